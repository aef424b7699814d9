"""The data-only `scenes` testbed: member/non-member splits of synthetic scenes, no model.

Membership here is only a label (no model was trained on it); the testbed exists to check the
blind shift checks: on `matched` no blind classifier should beat chance, on `shifted` one should.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from mmia.testbeds.base import Testbed, declared_roles, register_testbed
from mmia.testbeds.manifest import split_ids, write_manifest
from mmia.testbeds.scenes import MATCHED, N_FRAMES, SHIFTED, write_scenes_split

VERSION = "1"
SIZES = {"image": 400, "video": 100}
QUICK_SIZES = {"image": 40, "video": 10}


@register_testbed("scenes", summary="synthetic scenes (image and frame sequences), matched and shifted splits, "
                  "no model", version=VERSION, cost=15, roles={"membership": "matched", "shifted": "shifted"})
def build_scenes(out_dir: Path, *, seed: int = 0, quick: bool = False, image_size: int = 64) -> Testbed:
    """Write the four splits (matched, shifted; image and video) and manifest.json into `out_dir`."""
    out_dir = Path(out_dir)
    sizes = QUICK_SIZES if quick else SIZES
    splits: dict[str, str] = {}
    ids: dict[str, dict] = {}
    for split in ("matched", "shifted"):
        for video in (False, True):
            n = sizes["video" if video else "image"]
            path = write_scenes_split(out_dir, split, n_members=n, n_nonmembers=n, seed=seed,
                                      image_size=image_size, video=video)
            key = f"{split}_video" if video else split
            splits[key] = path.name
            ids[key] = split_ids(path)
    manifest = {
        "name": "scenes",
        "version": VERSION,
        "seed": seed,
        "quick": quick,
        "target_kind": None,
        "modalities": ["text", "image", "video"],
        "splits": splits,
        "roles": declared_roles("scenes"),
        "targets": {},
        "sizes": {k: {"members": len(v["members"]), "nonmembers": len(v["nonmembers"])} for k, v in ids.items()},
        "image_size": image_size,
        "frames_per_video": N_FRAMES,
        "generator": {"matched": asdict(MATCHED), "shifted_nonmembers": asdict(SHIFTED)},
        "ids": ids,
        "member_signal": None,
        "notes": "data only: labels mark the member stream; no model was trained on these samples",
    }
    write_manifest(out_dir, manifest)
    return Testbed.from_dir(out_dir)
