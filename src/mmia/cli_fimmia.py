"""Face of `mmia fimmia train|score`: typer commands over mmia.fimmia.api (parse, call, print)."""

from __future__ import annotations

from pathlib import Path

import typer

from mmia import cli_common as opt
from mmia.cli_common import accepts_quiet

app = typer.Typer(
    help="FiMMIA: the perturbation-based neural attack (train an attack model, then score).", no_args_is_help=True
)


def _config(
    k,
    field,
    seed,
    fill_mask_model,
    text_embedder,
    media_embedder,
    batch_size,
    no_reuse,
    prompt_template,
    device,
    answer_template=None,
    max_batch_tokens=None,
):
    from mmia.fimmia.pipeline import FimmiaConfig
    from mmia.perturb import NeighbourConfig

    return FimmiaConfig(
        neighbours=NeighbourConfig(k=k, field=field, seed=seed, fill_mask_model=fill_mask_model),
        text_embedder=None if text_embedder == "none" else text_embedder,
        media_embedder=None if media_embedder == "none" else media_embedder,
        batch_size=batch_size,
        max_batch_tokens=max_batch_tokens,
        reuse=not no_reuse,
        prompt_template=prompt_template,
        answer_template=answer_template,
        device=None if device == "auto" else device,
    )


@app.command("train")
@accepts_quiet
@opt.accepts_ray
def train_cmd(
    data: Path = typer.Argument(..., help="Labelled members/non-members (or the fine-tuning set with --base)."),
    target: Path = typer.Option(..., "--target", help="The audited model (Hugging Face directory or PEFT adapter)."),
    out: Path = typer.Option(..., "--out", help="Where the attack model is written (safetensors + config.json)."),
    base: Path = typer.Option(
        None, "--base", help="Two-model protocol: the target's model before fine-tuning (for a PEFT adapter "
        "target, also the base it is merged into)."
    ),
    k: int = typer.Option(24, "--k", help="Neighbours per sample."),
    field: str = typer.Option("auto", "--field", help="Perturbed field: auto, prompt, answer, text, media, a+b."),
    seed: int = typer.Option(0, "--seed"),
    fill_mask_model: str = typer.Option(None, "--fill-mask-model", help="Fill-mask model dir for substitutions."),
    text_embedder: str = typer.Option("default", "--text-embedder", help="sentence-transformers dir, or none."),
    media_embedder: str = typer.Option("target", "--media-embedder", help="target, a CLIP/CLAP dir, or none."),
    holdout: float = typer.Option(0.0, "--holdout", help="Share of samples kept out of training and evaluated."),
    no_text: bool = typer.Option(False, "--no-text", help="Ablation: no text-embedding branch."),
    no_media: bool = typer.Option(False, "--no-media", help="Ablation: no media-embedding branch."),
    with_loss: bool = typer.Option(
        False, "--with-loss", help="The fimmia+loss variant: the sample's own loss (with --base, also the "
        "base's) enters the loss branch beside each delta."
    ),
    sweep: bool = typer.Option(
        False, "--sweep", help="Choose the neighbours on the training rows first: each text field at 1, 2, 5 "
        "edits and 10%% of its words, the media alone, and --field itself, by training-free AUC (costs one "
        "feature pass per candidate)."
    ),
    batch_size: int = typer.Option(32, "--batch-size"),
    max_batch_tokens: int = opt.MAX_BATCH_TOKENS,
    no_reuse: bool = typer.Option(False, "--no-reuse", help="Score every neighbour from scratch (slower)."),
    prompt_template: str = typer.Option(
        "{media}{prompt}", "--prompt-template", help="Text before the answer; {media} = the media placeholders."
    ),
    answer_template: str = typer.Option(
        None, "--answer-template", help="The answer as trained, e.g. ' {answer}</s>' (default: ' ' + answer)."
    ),
    device: str = typer.Option("auto", "--device", help="cpu, cuda, cuda:1, ... (auto: CUDA when present)."),
    cache_dir: Path = typer.Option(None, "--cache", "--cache-dir", help="Value cache (default: the user cache)."),
    skip_bad: bool = typer.Option(False, "--skip-bad"),
    engine: str = "local",
    ray=None,
):
    """Train a FiMMIA attack model on labelled samples of the target (or base vs target).

    --engine ray: the feature passes on Ray actors (shards in OUT/shards/ a rerun reuses), the training here.
    """
    from mmia.fimmia import api
    from mmia.fimmia.network import TrainConfig

    cfg = _config(
        k,
        field,
        seed,
        fill_mask_model,
        text_embedder,
        media_embedder,
        batch_size,
        no_reuse,
        prompt_template,
        device,
        answer_template,
        max_batch_tokens,
    )
    model, result = api.train(
        data,
        target,
        out,
        base=base,
        cfg=cfg,
        train_cfg=TrainConfig(seed=seed),
        use_text=not no_text,
        use_media=not no_media,
        holdout=holdout,
        cache_dir=cache_dir,
        skip_bad=skip_bad,
        use_loss=with_loss,
        sweep=sweep,
        engine=engine,
        ray=ray,
    )
    if "sweep" in model.settings:
        sw = model.settings["sweep"]
        typer.echo(f"neighbours chosen on the training rows: {sw['chosen']} "
                   f"(training-row AUC {sw['train_auc'][sw['chosen']]:.3f})")
    typer.echo(
        f"attack model: {out} (trained on {len(model.train_ids)} samples, best epoch {model.history['best_epoch']})"
    )
    if result is not None:
        from mmia.report import print_run

        print_run(result)
        typer.echo(f"held-out results: {out / 'holdout' / 'results.json'}")


@app.command("score")
@accepts_quiet
@opt.accepts_ray
def score_cmd(
    data: Path = typer.Argument(..., help="Samples to audit (labels optional; needed for AUC)."),
    target: Path = typer.Option(..., "--target", help="The audited model (Hugging Face directory or PEFT adapter)."),
    attack_model: Path = typer.Option(..., "--attack-model", help="A directory written by `mmia fimmia train`."),
    base: Path = typer.Option(
        None, "--base", help="A PEFT adapter target's base model (default: the one the attack model was trained with, "
        "else the one its adapter_config.json names)."
    ),
    out: Path = typer.Option(..., "--out", help="Results directory."),
    batch_size: int = typer.Option(None, "--batch-size"),
    max_batch_tokens: int = opt.MAX_BATCH_TOKENS,
    device: str = typer.Option("auto", "--device", help="cpu, cuda, ... (auto: CUDA when present)."),
    cache_dir: Path = typer.Option(None, "--cache", "--cache-dir", help="Value cache (default: the user cache)."),
    skip_bad: bool = typer.Option(False, "--skip-bad"),
    skip_trained: bool = typer.Option(
        False, "--skip-trained", help="Leave out the samples the attack trained on (default: refuse the file)."
    ),
    engine: str = "local",
    ray=None,
):
    """Score samples with a trained FiMMIA attack model; writes results.json, scores.parquet, report."""
    from mmia.fimmia import api

    result = api.score(data, target, attack_model, out, cache_dir=cache_dir, skip_bad=skip_bad, batch_size=batch_size,
                       max_batch_tokens=max_batch_tokens, device=None if device == "auto" else device,
                       skip_trained=skip_trained, base=base, engine=engine, **ray.as_kwargs())
    if result.attacks:
        from mmia.report import print_run

        print_run(result)
    typer.echo(f"results: {out / 'results.json'}")
