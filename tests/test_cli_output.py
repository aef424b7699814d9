"""What the commands print: mmia's own progress only (no transformers bars), `--quiet` before or after
the command."""

import subprocess
import sys

import typer

from mmia.cli import app
from tests.conftest import write_jsonl

LIBRARY_BARS = ("Loading weights", "Writing model shards", "it/s]")


def _run(*args):
    proc = subprocess.run([sys.executable, "-m", "mmia.cli", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, proc.stdout, proc.stderr


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_every_command_takes_quiet_after_its_name():
    seen = list(_commands(typer.main.get_command(app)))
    assert {("attack",), ("shift",), ("demo",), ("fimmia", "train"), ("fimmia", "score")} <= {p for p, _ in seen}
    for path, cmd in seen:
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert {"--quiet", "-q"} <= opts, path


def test_quiet_after_the_command_silences_progress(tmp_path):
    rows = [{"id": f"r{i}", "text": f"{'old' if i % 2 else 'new'} photo number {i}", "label": i % 2} for i in range(40)]
    data = write_jsonl(tmp_path / "set.jsonl", rows)
    common = ("--methods", "bag_of_words", "--folds", 3, "--cache", tmp_path / "cache")
    rc, _, err = _run("shift", data, "--out", tmp_path / "a", *common, "--quiet")
    assert rc == 0, err[-2000:]
    assert "━" not in err and (tmp_path / "a" / "results.json").exists()
    rc, _, err = _run("shift", data, "--out", tmp_path / "b", *common, "-q")
    assert rc == 0 and "━" not in err, err[-2000:]


def test_a_testbed_build_shows_mmia_bars_but_no_transformers_bars(tmp_path):
    # Builds train and save_pretrained three models (the old code printed 'Writing model shards'
    # four times here); mmia's own training bars stay.
    rc, _, err = _run("testbed", "vlm", "--quick", "--out", tmp_path / "tb", "--cache", tmp_path / "cache")
    assert rc == 0, err[-2000:]
    assert not [b for b in LIBRARY_BARS if b in err], err[-2000:]
    assert "target model" in err  # mmia's progress is still shown
    rc, _, err = _run("testbed", "vlm", "--quick", "--out", tmp_path / "tb2", "--cache", tmp_path / "c2", "--quiet")
    assert rc == 0 and "━" not in err and not [b for b in LIBRARY_BARS if b in err], err[-2000:]
