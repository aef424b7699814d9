"""The value cache: round trips, key separation, and resume after SIGKILL."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from mmia.cache import Cache, cached_map, fingerprint_dir, make_key


def test_round_trip_preserves_arrays(tmp_path):
    with Cache(tmp_path / "c") as c:
        v = {"logp": np.arange(5, dtype=np.float32), "mask": np.array([1, 0, 1], dtype=np.int8)}
        c.put("k", v)
        got = c.get("k")
        assert got["logp"].dtype == np.float32 and got["mask"].dtype == np.int8
        np.testing.assert_array_equal(got["logp"], v["logp"])
        assert c.get("absent") is None
        assert "k" in c and len(c) == 1
        assert c.missing(["k", "x"]) == ["x"]


def test_keys_separate_model_sample_perturbation_and_version():
    keys = {
        make_key("m1", "s1"),
        make_key("m2", "s1"),
        make_key("m1", "s2"),
        make_key("m1", "s1", "p1"),
        make_key("m1", "s1", "", "loss"),
        make_key("m1", "s1", "", "loss", "2"),
    }
    assert len(keys) == 6
    assert make_key("m1", "s1") == make_key("m1", "s1")


def test_fingerprint_changes_with_weights(tmp_path):
    from safetensors.numpy import save_file

    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"model_type": "x"}')
    save_file({"w": np.zeros(10, dtype=np.float32)}, str(d / "model.safetensors"))
    a = fingerprint_dir(d)
    assert a == fingerprint_dir(d)
    save_file({"w": np.ones(10, dtype=np.float32)}, str(d / "model.safetensors"))
    assert fingerprint_dir(d) != a


def test_cached_map_computes_only_missing(tmp_path):
    calls = []

    def compute(items):
        calls.append(list(items))
        return [{"v": np.array([x * 2.0])} for x in items]

    keys = [f"k{i}" for i in range(10)]
    with Cache(tmp_path / "c") as c:
        out = cached_map(c, keys[:4], list(range(4)), compute, batch_size=3)
        assert [float(o["v"][0]) for o in out] == [0, 2, 4, 6]
        calls.clear()
        out = cached_map(c, keys, list(range(10)), compute, batch_size=3)
        assert sorted(x for batch in calls for x in batch) == [4, 5, 6, 7, 8, 9]
        assert [float(o["v"][0]) for o in out] == [2.0 * i for i in range(10)]


def test_cached_map_rejects_wrong_value_count(tmp_path):
    with Cache(tmp_path / "c") as c, pytest.raises(RuntimeError, match="returned 1 values for 2"):
        cached_map(c, ["a", "b"], [1, 2], lambda items: [{"v": np.zeros(1)}], batch_size=2)


WORKER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from mmia.cache import Cache, cached_map, make_key

    store, log = sys.argv[1], sys.argv[2]
    items = list(range(40))
    keys = [make_key("model", f"s{i}", "", "square", "1") for i in items]

    def compute(batch):
        with open(log, "a") as fh:
            for x in batch:
                fh.write(f"{x}\\n")
        time.sleep(0.15)
        return [{"v": np.full(1000, x * x, dtype=np.float64)} for x in batch]

    with Cache(store) as c:
        cached_map(c, keys, items, compute, batch_size=4)
    """
)


def test_resume_after_sigkill_computes_only_what_was_missing(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    store, log1, log2 = tmp_path / "store", tmp_path / "run1.log", tmp_path / "run2.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), str(store), str(log1)], env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        if log1.exists() and len(log1.read_text().split()) >= 16:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    from mmia.cache import make_key

    keys = [make_key("model", f"s{i}", "", "square", "1") for i in range(40)]
    with Cache(store) as c:
        present = {i for i, k in enumerate(keys) if k in c}
        for i in present:  # whatever survived the kill is whole and correct
            np.testing.assert_array_equal(c.get(keys[i])["v"], np.full(1000, i * i, dtype=np.float64))
    assert 0 < len(present) < 40, "the kill should land mid-run"

    subprocess.run([sys.executable, str(script), str(store), str(log2)], env=env, check=True)
    recomputed = {int(x) for x in log2.read_text().split()}
    assert recomputed == set(range(40)) - present
    with Cache(store) as c:
        assert all(k in c for k in keys)
