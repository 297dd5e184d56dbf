"""spkid/cli.py: run_main turns a user error into one line and an exit status, never a traceback."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spkid.cli import run_main
from spkid.errors import SpkidError

STEPS = Path(__file__).resolve().parents[1] / "steps"


def exit_of(main, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["/x/steps/tool.py"])
    with pytest.raises(SystemExit) as e:
        run_main(main, [])
    return e.value.code, capsys.readouterr().err


def raiser(exc: BaseException):
    def main(argv):
        raise exc
    return main


def test_os_errors_are_one_line_naming_the_path(monkeypatch, capsys, tmp_path):
    def open_missing(argv):
        open(tmp_path / "nope.txt")
    assert exit_of(open_missing, monkeypatch, capsys) == (1, f"tool.py: error: {tmp_path / 'nope.txt'}: "
                                                             f"No such file or directory\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")

    def rename_onto_dir(argv):
        os.replace(tmp_path / "f", tmp_path / "d")
    assert exit_of(rename_onto_dir, monkeypatch, capsys) == (1, f"tool.py: error: {tmp_path / 'f'} -> "
                                                                f"{tmp_path / 'd'}: Is a directory\n")
    assert exit_of(raiser(OSError("disk on fire")), monkeypatch, capsys) == (1, "tool.py: error: disk on fire\n")


def test_spkid_errors_interrupts_and_status(monkeypatch, capsys):
    assert exit_of(raiser(SpkidError("a.txt:3: bad; fix it")), monkeypatch, capsys) == \
        (1, "tool.py: error: a.txt:3: bad; fix it\n")
    assert exit_of(raiser(KeyboardInterrupt()), monkeypatch, capsys) == (130, "tool.py: interrupted\n")
    assert exit_of(lambda argv: 2, monkeypatch, capsys) == (2, "")
    with pytest.raises(ValueError):  # a bug still shows its traceback
        exit_of(raiser(ValueError("bug")), monkeypatch, capsys)


def test_every_step_help_says_what_it_does():
    # steps/score.py --help was a bare option list, without its purpose and example
    steps = sorted(STEPS.glob("*.py"))
    runs = {p: subprocess.Popen([sys.executable, str(p), "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for p in steps}
    for path, proc in runs.items():
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0 and out.startswith("usage: "), (path.name, out[-500:])
        doc = ast.get_docstring(ast.parse(path.read_text())).strip().splitlines()[0]
        assert doc in out, (path.name, out[:300])
