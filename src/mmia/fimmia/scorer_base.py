"""What every FiMMIA scorer does first: load the target, check it, lay it out with FiMMIA's templates."""

from __future__ import annotations

from pathlib import Path

from mmia.fimmia.layout import DEFAULT_PROMPT_TEMPLATE, FimmiaLayout


class ScorerBase:
    """The options and target setup the LLaVA, Whisper and any-target scorers share.

    A subclass names the target kind it loads (`target_kind`, None: whatever `load_target` finds)
    and checks or prepares the loaded target in `_setup`.
    """

    target_kind: str | None = None

    def __init__(
        self,
        model_dir: str | Path,
        *,
        batch_size: int = 32,
        max_batch_tokens: int | None = None,
        reuse: bool = True,
        prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
        answer_sep: str = " ",
        answer_template: str | None = None,
        max_frames: int = 8,
        device: str | None = None,
        target=None,
        **_ignored,  # the pipeline passes one set of options to every scorer
    ):
        from mmia.targets import load_target

        self.model_dir = str(model_dir)
        if target is None:
            kind = {} if self.target_kind is None else {"kind": self.target_kind}
            target = load_target(self.model_dir, device=device, **kind)
        self.target = target
        self._check_target()
        if hasattr(self.target, "max_frames"):
            self.target.max_frames = max_frames
        self.layout = FimmiaLayout(prompt_template, answer_template)
        self.layout.apply(self.target)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.reuse = reuse
        self.prompt_template = prompt_template
        self.answer_sep = answer_sep
        self.answer_template = answer_template
        self.max_frames = max_frames
        self.fingerprint = self.target.fingerprint
        self.device = self.target.device
        self._setup()

    def _check_target(self) -> None:
        """Raise ModelNotFoundError where this scorer cannot read `self.target`."""

    def _setup(self) -> None:
        """Scorer-specific state derived from the checked, laid-out target."""

    def batches(self, lengths) -> list[slice]:
        """Forward batches over rows of these token counts, in order: `batch_size` rows each, also
        cut at `max_batch_tokens` padded tokens where that is set (`mmia.engine.packing`)."""
        from mmia.engine.packing import token_batches

        return token_batches(lengths, self.max_batch_tokens, self.batch_size)
