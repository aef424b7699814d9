"""`mmia umid --engine ray`: the inversions on Ray Data actors, the scores equal to the local
engine's, a lost shard recomputed alone (conftest's 2-CPU `ray_cluster`; a tiny random CLIP)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_models import save_clip
from typer.testing import CliRunner

from mmia.cli import app

pytest.importorskip("ray")

# The actors run one torch thread each (--cpus-per-worker 1 on the 2-CPU cluster); the local run
# does too, so the two sum in the same order: the ensemble's scores are ranks against the
# reference, where float32 rounding of another thread count (~1e-7 in a signal) can move a query
# by one rank step (docs/scale.md).
torch.set_num_threads(1)

ARGS = ["--restarts", "2", "--steps", "3", "--reference-size", "10", "--show-queries"]


@pytest.fixture(scope="module")
def queries(tmp_path_factory):
    root = tmp_path_factory.mktemp("umid-ray")
    clip = save_clip(root / "clip")
    names = [f"{a} {b}" for a in ("Ada", "Bo", "Cy", "Di", "Ed") for b in ("Lind", "Moro", "Quist")]
    (root / "q.jsonl").write_text("".join(json.dumps({"id": f"q{i}", "text": n, "label": i % 2}) + "\n"
                                          for i, n in enumerate(names[:9])))
    # one control name is also a query: its inversion is computed once, as the local cache does
    (root / "names.jsonl").write_text("".join(json.dumps({"id": f"n{i}", "text": n}) + "\n"
                                              for i, n in enumerate(names[8:14])))
    return root, clip


def _umid(root, clip, out, *extra):
    res = CliRunner().invoke(app, ["--quiet", "umid", str(root / "q.jsonl"), "--target", str(clip), "--out", str(out),
                                   *ARGS, "--control-names", str(root / "names.jsonl"), "--sequential", *extra],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads((out / "results.json").read_text()), pd.read_parquet(out / "scores.parquet")


def _assert_same(got, want, got_scores, want_scores):
    assert list(got_scores.columns) == list(want_scores.columns) and list(got_scores["id"]) == list(want_scores["id"])
    for col in want_scores.select_dtypes("number").columns.drop("label"):
        np.testing.assert_allclose(got_scores[col], want_scores[col], atol=1e-5, rtol=0, err_msg=col)
    assert [a["name"] for a in got["attacks"]] == [a["name"] for a in want["attacks"]]
    for a, b in zip(got["attacks"], want["attacks"], strict=True):
        assert a["auc"] == pytest.approx(b["auc"], abs=1e-9), a["name"]


def test_umid_on_ray_equals_local_and_a_lost_shard_is_recomputed_alone(queries, ray_cluster, tmp_path):
    root, clip = queries
    want, want_scores = _umid(root, clip, tmp_path / "local", "--cache-dir", str(tmp_path / "cache"))
    out = tmp_path / "ray"
    got, got_scores = _umid(root, clip, out, "--engine", "ray", "--ray-address", ray_cluster, "--workers", "2")
    _assert_same(got, want, got_scores, want_scores)
    info = got["settings"]["ray"]
    assert got["settings"]["engine_kind"] == "ray"
    # 9 queries + 10 gibberish + 6 control names (one of them a query) + 9 + 10 sequential
    assert info["sets"] == {"queries": 9, "reference": 10, "control names": 6, "sequential queries": 9,
                            "sequential reference": 10}
    assert info["inversions"] == info["computed"] == 9 + 10 + 5 + 9 + 10 and info["reused"] == 0

    shards = sorted((out / "shards").glob("*/rows-*.parquet"))
    lost = len(pd.read_parquet(shards[1]))
    shards[1].unlink()
    again, again_scores = _umid(root, clip, out, "--engine", "ray", "--ray-address", ray_cluster)
    assert again["settings"]["ray"]["computed"] == lost and again["settings"]["ray"]["reused"] == 43 - lost
    _assert_same(again, want, again_scores, want_scores)
