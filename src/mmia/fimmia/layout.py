"""How FiMMIA writes a sample and its neighbours for a target: the score attacks' layout.

Every FiMMIA scorer encodes rows through the target (`mmia.targets`), so a sample's text is laid
out exactly as the score attacks lay it out (the model's chat template, or a prompt used as
written) and the loss of an original is the attacks' answer loss. FiMMIA's own templates map
onto the plain layout: with a `prompt_template` other than the default, or an `answer_template`,
the templates say the whole layout, so the target's chat template is off (`apply`) and the
prompt is written out with the model's media placeholders (`{media}`), which the target keeps as
written; an `answer_template` (e.g. " {answer}</s>", the format a model was trained on) is the
answer text, and the loss then covers all of it, its closing special tokens included, as in
training.
"""

from __future__ import annotations

import dataclasses

import numpy as np

DEFAULT_PROMPT_TEMPLATE = "{media}{prompt}"


@dataclasses.dataclass(frozen=True)
class FimmiaLayout:
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE
    answer_template: str | None = None

    @property
    def custom(self) -> bool:
        """Whether the templates, not the model's chat template, lay the text out."""
        return self.prompt_template != DEFAULT_PROMPT_TEMPLATE or self.answer_template is not None

    def apply(self, target) -> None:
        """Set the target up for this layout (its chat template off when the templates lay out)."""
        if self.custom and hasattr(target, "use_chat_template"):
            target.use_chat_template = False

    def row(self, target, sample, prompt, answer, text, n_media: int):
        """`sample` with a neighbour's text fields, written out by the templates where they are set."""
        if self.answer_template is not None and answer is not None:
            answer = self.answer_template.format(answer=answer).lstrip()
        if prompt is not None and self.custom:
            placeholder = getattr(target, "placeholder", "") or ""
            prompt = self.prompt_template.format(media=placeholder * n_media, prompt=prompt)
        return dataclasses.replace(sample, prompt=prompt, answer=answer, text=text)

    def loss_span(self, enc) -> tuple[int, int]:
        """[start, stop) of the tokens of an encoded row (`mmia.targets.Encoded`) whose cross-entropy
        is the loss: from the end of the prompt part to the answer slice's last token, or with an
        answer template to the end (the template's closing tokens; a row laid out as written has
        nothing after them). Every token in the span counts, special ones too (a neighbour's
        unknown word is part of its answer, as in training). (0, 0): no answer."""
        from mmia.targets import ANSWER

        codes = enc.codes
        at = np.flatnonzero(codes == ANSWER)
        if not len(at) or at[0] == 0:
            return 0, 0
        start = int(at[0]) if enc.answer_start is None else min(int(enc.answer_start), int(at[0]))
        stop = len(codes) if self.answer_template is not None else int(at[-1]) + 1
        return max(start, 1), stop  # position 0 is never predicted

    def settings(self) -> dict:
        return {"prompt_template": self.prompt_template, "answer_template": self.answer_template}
