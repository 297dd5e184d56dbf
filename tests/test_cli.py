"""spkid/cli.py: run_main turns a user error into one line and an exit status, never a traceback."""

from __future__ import annotations

import os
import sys

import pytest

from spkid.cli import run_main
from spkid.errors import SpkidError
from trained_system import STEPS, load_step


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


@pytest.mark.parametrize("step", sorted(p.stem for p in STEPS.glob("*.py")))
def test_every_step_help_says_what_it_does(step, capsys):
    # steps/score.py --help was a bare option list, without its purpose and example
    with pytest.raises(SystemExit) as e:
        load_step(step).main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: ")
    doc = load_step(step).__doc__.strip().splitlines()[0]
    assert doc in out, (step, out[:300])
