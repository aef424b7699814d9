"""manifest.json of a built testbed, and content hashes that show a build is reproducible."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mmia import __version__


def split_ids(jsonl: Path) -> dict[str, list[str]]:
    """Member and non-member ids of a split file, each sorted."""
    members, nonmembers = [], []
    for line in Path(jsonl).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            (members if row["label"] == 1 else nonmembers).append(row["id"])
    return {"members": sorted(members), "nonmembers": sorted(nonmembers)}


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tree_hash(root: Path, pattern: str = "*") -> str:
    """One sha256 over the relative paths and contents of the files under `root` matching `pattern`."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob(pattern) if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode("utf-8") + b"\0")
        h.update(file_hash(p).encode("ascii"))
    return h.hexdigest()


def weights_hash(model_dir: Path) -> str:
    """sha256 over a model directory's safetensors files (the weights alone, not the configs)."""
    return tree_hash(model_dir, "*.safetensors")


def write_manifest(root: Path, manifest: dict) -> Path:
    """Write manifest.json (sorted keys, so equal builds give equal files)."""
    payload = {"mmia_version": __version__, **manifest}
    path = Path(root) / "manifest.json"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
