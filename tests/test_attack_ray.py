"""`mmia attack --engine ray`: the local engine's scores from Ray Data actors, resumable from shards,
a killed worker restarted with no sample lost or counted twice, a killed driver resumed by a rerun.

One 2-CPU local cluster (no dashboard; conftest's session fixture `ray_cluster`) serves them all;
subprocess drivers join it with --ray-address.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch
from tiny_models import tiny_dir, write_media_dataset  # noqa: F401  (fixture)

from mmia.attacks.ray_runner import SHARDS, done_ids
from mmia.attacks.runner import run_attack
from mmia.engine.ray_cluster import FAULT_ENV

ray = pytest.importorskip("ray")

torch.set_num_threads(1)
SRC = str(Path(__file__).resolve().parents[1] / "src")
N = 24
ATTACKS = ["loss", "zlib", "lowercase", "min_k", "min_k_pp", "max_prob_gap", "mod_renyi", "reference"]


@pytest.fixture(scope="module")
def setup(tiny_dir, tmp_path_factory):  # noqa: F811
    """A text set of N rows, the tiny causal LM (a tiny GPT-2 its reference), and the local engine's results."""
    root = tmp_path_factory.mktemp("ray-attack")
    data = write_media_dataset(root / "d", n=N, image=False, prompt=False)
    model = tiny_dir("causal_lm")
    local, table = run_attack(data, model, attacks=ATTACKS, reference_dir=tiny_dir("gpt2"), out_dir=root / "local",
                              cache_dir=root / "cache", batch_size=4)
    return data, model, tiny_dir("gpt2"), local, table


def _ray(setup, out, attacks=ATTACKS, **kw):
    """`run_attack` on the Ray engine, on the set-up's data, target and reference."""
    data, model, ref = setup[:3]
    return run_attack(data, model, attacks=attacks, reference_dir=ref, out_dir=out, batch_size=4, engine="ray", **kw)


def _assert_same_scores(table, expected, expected_result=None, result=None):
    assert table.ids == expected.ids and np.array_equal(table.labels, expected.labels)
    assert list(table.columns) == list(expected.columns)
    for name, want in expected.columns.items():
        np.testing.assert_allclose(table.columns[name], want, atol=1e-5, rtol=0, err_msg=name)
    if result is not None:
        assert [e.name for e in result.attacks] == [e.name for e in expected_result.attacks]
        for got, want in zip(result.attacks, expected_result.attacks, strict=True):
            assert got.auc == pytest.approx(want.auc, abs=1e-9), got.name


def _shard_ids(out: Path) -> list[str]:
    return [i for p in sorted((out / SHARDS).glob("*/rows-*.parquet")) for i in pd.read_parquet(p)["id"]]


def test_ray_engine_equals_local_and_a_rerun_computes_only_what_no_shard_holds(setup, ray_cluster, tmp_path):
    data, model, ref, local, expected = setup
    out = tmp_path / "out"
    res, table = _ray(setup, out, workers=2, block_rows=5)
    _assert_same_scores(table, expected, local, res)
    assert res.settings["ray"]["computed"] == N and res.settings["ray"]["reused"] == 0
    assert res.settings["ray"]["blocks"] == 5 and res.settings["engine"]["target"]["computed"] == N
    ids = _shard_ids(out)
    assert sorted(ids) == sorted(expected.ids) and len(ids) == N
    on_disk = pd.read_parquet(out / "scores.parquet")
    assert list(on_disk["id"]) == expected.ids
    assert json.loads((out / "results.json").read_text())["settings"]["engine_kind"] == "ray"

    # a rerun finds every id in the shards and starts no worker
    again, table2 = _ray(setup, out, workers=2)
    assert again.settings["ray"] == {**again.settings["ray"], "computed": 0, "reused": N}
    _assert_same_scores(table2, expected)

    # a lost shard: exactly its rows are computed again
    shard = sorted((out / SHARDS).glob("*/rows-*.parquet"))[2]
    lost = len(pd.read_parquet(shard))
    shard.unlink()
    third, table3 = _ray(setup, out, workers=2, block_rows=N)
    assert third.settings["ray"]["computed"] == lost and third.settings["ray"]["reused"] == N - lost
    assert third.settings["ray"]["blocks"] == 1 and third.settings["ray"]["actors"] == 1  # no actor for no block
    _assert_same_scores(table3, expected)

    # another configuration (other attacks) writes to its own shard folder and reuses nothing
    other, loss_only = _ray(setup, out, attacks=["loss"], workers=1)
    assert other.settings["ray"]["reused"] == 0 and len(list((out / SHARDS).iterdir())) == 2
    assert list(loss_only.columns) == ["loss"]
    np.testing.assert_allclose(loss_only.columns["loss"], expected.columns["loss"], atol=1e-5, rtol=0)


def test_a_worker_killed_mid_run_is_restarted_and_no_sample_is_lost_or_counted_twice(setup, ray_cluster, tmp_path,
                                                                                     monkeypatch):
    data, model, ref, local, expected = setup
    marker = tmp_path / "killed"
    monkeypatch.setenv(FAULT_ENV, f"kill-once:{marker}")
    out = tmp_path / "out"
    res, table = _ray(setup, out, workers=2, block_rows=4)
    assert marker.exists()  # a worker SIGKILLed itself in its first block
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # that process is gone: its block was scored by a restarted one
    ids = _shard_ids(out)
    assert len(ids) == N and sorted(ids) == sorted(expected.ids)
    assert res.settings["ray"]["computed"] == N and res.settings["engine"]["target"]["computed"] == N
    pids = {json.loads(pq.read_schema(p).metadata[b"mmia"])["pid"] for p in (out / SHARDS).glob("*/rows-*.parquet")}
    assert pid not in pids
    _assert_same_scores(table, expected, local, res)


def test_a_block_that_kills_its_worker_every_time_fails_the_run_after_the_retries(setup, ray_cluster, tmp_path,
                                                                                 monkeypatch):
    """A poison row (its worker dies on it every time): the run stops after 1 + --max-retries
    starts of its block, naming the block's rows, with every other block's shard kept."""
    from mmia.errors import InputError

    data, model, ref, local, expected = setup
    monkeypatch.setenv(FAULT_ENV, "kill-row:6")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"rows 5-8 killed their Ray worker 2 times \(--max-retries 1") as exc:
        _ray(setup, out, workers=1, block_rows=4, max_retries=1)
    assert str(data) in str(exc.value) and exc.value.exit_code == 2
    assert len(_shard_ids(out)) == N - 4 and not (out / "results.json").exists()
    monkeypatch.delenv(FAULT_ENV)
    res, table = _ray(setup, out, workers=1, block_rows=4)
    assert res.settings["ray"]["computed"] == 4 and res.settings["ray"]["reused"] == N - 4
    _assert_same_scores(table, expected, local, res)


def _cli(*args, env_extra=None, **kw):
    env = {**os.environ, "PYTHONPATH": SRC, **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "mmia.cli", "--quiet", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


def test_cli_driver_killed_mid_run_then_rerun_computes_only_the_rest(setup, ray_cluster, tmp_path):
    data, model, ref, local, expected = setup
    out = tmp_path / "out"
    args = ["attack", str(data), "--target", str(model), "--attacks", ",".join(ATTACKS), "--reference", str(ref),
            "--out", str(out),
            "--batch-size", "4", "--engine", "ray", "--ray-address", ray_cluster, "--workers", "1"]
    # 24 rows, one worker, batch 4: 3 blocks of 8; each block waits 2 s, so the driver is killed
    # after the first shard lands and before the last.
    proc = _cli(*args, env_extra={FAULT_ENV: "delay:2"})
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not list((out / SHARDS).glob("*/rows-*.parquet")):
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    shard_dir = next((out / SHARDS).iterdir())
    held = done_ids(shard_dir)
    assert 0 < len(held) < N and not (out / "results.json").exists()

    rerun = _cli(*args)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["ray"]["reused"] == len(held) and res["settings"]["ray"]["computed"] == N - len(held)
    ids = _shard_ids(out)
    assert len(ids) == N and sorted(ids) == sorted(expected.ids)
    df = pd.read_parquet(out / "scores.parquet")
    assert list(df["id"]) == expected.ids
    for name, want in expected.columns.items():
        np.testing.assert_allclose(df[name].to_numpy(), want, atol=1e-5, rtol=0, err_msg=name)


def test_cli_ray_bad_input_is_one_line_naming_file_and_row_exit_2(tiny_dir, tmp_path, capsys, monkeypatch):  # noqa: F811
    from mmia import cli

    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "a", "text": "fine", "label": 1}\n{"id": "b", "text": 3, "label": 0}\n', encoding="utf-8")
    model = tiny_dir("causal_lm")
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["mmia", "attack", str(data), "--target", str(model), "--out",
                                      str(tmp_path / "o"), "--engine", "ray", "--workers", "2"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1
    assert f"{data}, row 2" in err and "'text' must be a string" in err


def test_media_that_fails_to_decode_in_a_worker_names_its_row_or_is_skipped(tiny_dir, ray_cluster, tmp_path):  # noqa: F811
    from mmia.data import load_dataset
    from mmia.errors import InputError

    ds = load_dataset(write_media_dataset(tmp_path / "d", n=6))
    Path(ds[2].image).write_bytes(b"not an image any more")  # after validation: the worker finds it
    with pytest.raises(InputError, match="row 3"):
        run_attack(ds, tiny_dir("llava"), attacks=["loss"], out_dir=tmp_path / "o1", engine="ray", workers=2,
                   block_rows=3)
    res, table = run_attack(ds, tiny_dir("llava"), attacks=["loss"], out_dir=tmp_path / "o2", engine="ray",
                            workers=2, block_rows=3, skip_bad=True)
    local, ltable = run_attack(ds, tiny_dir("llava"), attacks=["loss"], cache_dir=tmp_path / "c", skip_bad=True)
    assert [s["id"] for s in res.skipped] == ["s2"] == [s["id"] for s in local.skipped]
    assert res.dataset.n_samples == 5 and res.dataset.n_skipped == 1
    _assert_same_scores(table, ltable)


def test_cli_ray_address_with_no_cluster_is_one_line_exit_2(tiny_dir, tmp_path):  # noqa: F811
    import socket

    data = write_media_dataset(tmp_path / "d", n=2, image=False, prompt=False)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = _cli("attack", str(data), "--target", str(tiny_dir("causal_lm")), "--out", str(tmp_path / "o"),
                "--engine", "ray", "--ray-address", f"127.0.0.1:{port}")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and len(err.strip().splitlines()) == 1, err
    assert f"cannot join the Ray cluster at --ray-address 127.0.0.1:{port}" in err


def test_cli_default_starts_and_stops_its_own_local_cluster(setup, tmp_path):
    """No --ray-address: mmia starts a local cluster of this machine's CPUs itself and shuts it down."""
    data, model, ref, local, expected = setup
    out = tmp_path / "out"
    proc = _cli("attack", str(data), "--target", str(model), "--attacks", "loss,min_k", "--out", str(out),
                "--batch-size", "4", "--engine", "ray", "--workers", "1", "--cpus-per-worker", "1")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["ray"]["started_here"] is True and res["settings"]["ray"]["computed"] == N
    df = pd.read_parquet(out / "scores.parquet")
    for name in ("loss", "min_k"):
        np.testing.assert_allclose(df[name].to_numpy(), expected.columns[name], atol=1e-5, rtol=0, err_msg=name)
