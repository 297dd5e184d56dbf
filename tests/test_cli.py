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


@pytest.fixture(scope="module")
def step_helps() -> dict[str, str]:
    """steps/<name>.py --help of every Python step, by name (started together: each imports torch)."""
    runs = {p: subprocess.Popen([sys.executable, str(p), "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for p in sorted(STEPS.glob("*.py"))}
    outs = {}
    for path, proc in runs.items():
        outs[path.stem] = proc.communicate(timeout=120)[0]
        assert proc.returncode == 0, (path.name, outs[path.stem][-500:])
    return outs


def test_every_step_help_says_what_it_does(step_helps):
    # steps/score.py --help was a bare option list, without its purpose and example
    for name, out in step_helps.items():
        assert out.startswith(f"usage: steps/{name}.py "), (name, out[:300])
        doc = ast.get_docstring(ast.parse((STEPS / f"{name}.py").read_text())).strip().splitlines()[0]
        assert doc in out, (name, out[:300])


@pytest.mark.parametrize("name", ["score", "extract", "verify", "embed", "export", "import_model"])
def test_help_of_a_step_on_a_trained_system_lists_no_training_option(step_helps, name):
    # score and extract listed ~50 options, the network's and training's among them, which only
    # config.conf sets for them; an import listed training's, which mean nothing to it
    out = step_helps[name]
    assert "--epochs=" not in out and "--lr=" not in out and "--batch-size=" not in out, out
    if name in ("score", "extract"):
        assert "--trunk=" not in out and "--score-type=" in out and "read from EXP_DIR/config.conf" in out


def test_shell_help_shows_defaults_and_its_own_name():
    root = STEPS.parent
    run = subprocess.run([str(root / "run.sh"), "--help"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    assert "  4  extract ten-crop embeddings of every set" in run.stderr  # the stage table
    assert "  --corpus=mini            mini | voxceleb" in run.stderr  # each option with its default
    fuse = subprocess.run([str(STEPS / "fuse_and_report.sh"), "--help"], capture_output=True, text=True, timeout=120)
    assert fuse.returncode == 0 and fuse.stdout.startswith("usage: steps/fuse_and_report.sh ")  # was "usage: fuse.py"
    assert fuse.stdout.count("usage:") == 1 and "--max-weight=3" in fuse.stdout
