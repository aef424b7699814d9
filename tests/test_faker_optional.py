"""faker is the `testbeds` extra: without it the testbeds fail with one line, the rest of mmia works."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mmia.errors import InputError

MISSING = "mmia testbeds need faker: pip install 'mmia[testbeds]'"


def test_names_without_faker_is_one_input_error(monkeypatch):
    from mmia.testbeds.names import person_names

    monkeypatch.setitem(sys.modules, "faker", None)  # what `import faker` sees when it is not installed
    with pytest.raises(InputError) as info:
        person_names(3, seed=0)
    assert str(info.value) == MISSING


def test_testbed_cli_without_faker_exits_2(monkeypatch, tmp_path, capsys):
    from mmia.cli import main

    monkeypatch.setitem(sys.modules, "faker", None)
    argv = ["mmia", "testbed", "clip-identities", "--quick", "--out", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", argv + ["--cache", str(tmp_path / "cache")])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == f"error: {MISSING}"


# A fresh interpreter: this process has imported mmia (and maybe faker) already.
_IMPORTS_WITHOUT_FAKER = """
import sys
sys.modules["faker"] = None
import mmia, mmia.cli, mmia.attacks.runner, mmia.shift, mmia.umid.audit, mmia.umid.methods, mmia.umid.api
from typer.testing import CliRunner
for args in (["--help"], ["attack", "--help"], ["shift", "--help"], ["umid", "--help"]):
    result = CliRunner().invoke(mmia.cli.app, args)
    assert result.exit_code == 0 and "Usage" in result.output, (args, result.output)
print("ok")
"""


def test_cli_and_audits_import_without_faker():
    src = str(Path(__file__).resolve().parents[1] / "src")
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTS_WITHOUT_FAKER],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": src},
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
