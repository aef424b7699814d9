"""FiMMIA scoring throughput: reuse (prefix KV cache / vision features) vs every neighbour from scratch.

Runs both paths side by side in one process on the same samples and neighbours, checks that
they give the same losses, and prints neighbours scored per second and the speedup (best wall
times), with the median of the repeats' CPU-time ratios beside it.

    PYTHONPATH=src python benchmarks/fimmia.py                      # random LLaVA, 64 image tokens
    PYTHONPATH=src python benchmarks/fimmia.py --image-tokens 576   # LLaVA-1.5-like image length
    PYTHONPATH=src python benchmarks/fimmia.py --target DIR --data FILE   # a real target / testbed
    ... --prompt-template $'USER: {media}\n{prompt}\nASSISTANT:' --answer-template ' {answer}</s>'  # vlm's format
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# The random LLaVA builder serves tests and this benchmark only, so it lives in tests/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _samples(n: int, root: Path, seed: int = 0):
    from PIL import Image
    from random_llava import BASIC_WORDS

    from mmia.data.schema import Sample

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = root / f"{i}.png"
        Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(p)
        prompt = " ".join(rng.choice(BASIC_WORDS, size=12))
        answer = " ".join(rng.choice(BASIC_WORDS, size=24))
        out.append(Sample(id=f"b{i}", row=i + 1, prompt=prompt, answer=answer, image=p))
    return out


def _run(scorer, samples, field, k):
    from mmia.perturb import NeighbourConfig, NeighbourMaker
    from mmia.perturb.neighbours import decode_media

    maker = NeighbourMaker(NeighbourConfig(k=k, field=field, text_techniques=("delete", "duplicate", "swap")))
    work = [(s, maker.make(s), decode_media(s, "image")) for s in samples]  # neighbours made outside the timing
    t0, c0 = time.perf_counter(), time.process_time()
    losses = [scorer.score_sample(s, nbs, img, "image")[1] for s, nbs, img in work]
    return time.perf_counter() - t0, time.process_time() - c0, np.concatenate(losses)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", type=Path, help="a LLaVA-style model dir (default: a random tiny LLaVA)")
    ap.add_argument("--data", type=Path, help="a data file with prompt/answer/image rows (with --target)")
    ap.add_argument("--image-tokens", type=int, default=64, help="image tokens of the random LLaVA (a square)")
    ap.add_argument("--samples", type=int, default=6)
    ap.add_argument("--k", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=25)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3,
                    help="interleaved repeats: the best wall time of each path counts, and the median of the "
                         "repeats' CPU-time ratios (steadier on a shared machine)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--prompt-template", default="{media}{prompt}",
                    help="FiMMIA's prompt template (default: the target's own layout, its chat template if any)")
    ap.add_argument("--answer-template", default=None, help="e.g. ' {answer}</s>' (the vlm testbed's format)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from mmia.fimmia.scoring_llava import LlavaScorer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.target is None:
            from random_llava import build_random_llava

            side = int(round(args.image_tokens**0.5))
            target = build_random_llava(tmp / "llava", image_size=side * 8, patch_size=8, hidden=128, layers=4)
            samples = _samples(args.samples, tmp)
        else:
            from mmia.data import load_dataset

            target = args.target
            samples = [s for s in load_dataset(args.data) if s.image is not None][: args.samples]

        def scorer(reuse, template=args.prompt_template):
            return LlavaScorer(target, reuse=reuse, batch_size=args.batch_size, device=args.device,
                               prompt_template=template, answer_template=args.answer_template)

        fast, slow = scorer(True), scorer(False)
        print(
            f"target: {target}  image tokens per image: {fast.tokens_per_image}  samples: {len(samples)}  "
            f"K: {args.k}  threads: {args.threads}  device: {fast.device}"
        )
        _run(fast, samples[:1], "answer", 2)  # warm-up (allocator, kernels)
        _run(slow, samples[:1], "answer", 2)
        print(f"{'perturbed field':<16}{'reuse':>16}{'from scratch':>16}{'speedup':>10}{'cpu-time':>10}"
              f"{'max |dloss|':>14}")
        text_first = "{prompt} {media}"
        cases = (
            ("answer", "reuses the image+prompt KV cache", fast, slow),
            ("prompt", "reuses the image KV cache", fast, slow),
            (
                "prompt",
                "prompt-first template: reuses vision features",
                scorer(True, text_first),
                scorer(False, text_first),
            ),
        )
        for field, what, f_scorer, s_scorer in cases:
            # interleaved repeats, best of each: the machine is shared, so single timings are noisy
            t_fast = t_slow = float("inf")
            cpu_ratios = []
            for _ in range(args.repeats):
                t, c_fast, l_fast = _run(f_scorer, samples, field, args.k)
                t_fast = min(t_fast, t)
                t, c_slow, l_slow = _run(s_scorer, samples, field, args.k)
                t_slow = min(t_slow, t)
                cpu_ratios.append(c_slow / c_fast)
            n = len(l_fast)
            print(
                f"{field:<16}{n / t_fast:>12.1f} n/s{n / t_slow:>12.1f} n/s{t_slow / t_fast:>9.2f}x"
                f"{float(np.median(cpu_ratios)):>9.2f}x{float(np.max(np.abs(l_fast - l_slow))):>14.2e}   ({what})"
            )


if __name__ == "__main__":
    main()
