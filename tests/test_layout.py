"""The package layout's rules (spkid/__init__.py): which subpackage may import which, module and function sizes."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "spkid"
FOUNDATIONS = {"errors", "fileio", "config", "options", "registry", "cli", "console", "device", "jobs", "expdir"}
ALLOWED = {  # subpackage -> the subpackages it may import (besides itself and the foundations)
    "corpora": {"data"},
    "data": set(),
    "models": set(),
    "train": {"data", "models"},
    "eval": {"data", "models"},
}


def spkid_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level part under spkid) of every spkid import in a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "spkid" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def owner(path: Path) -> str:
    rel = path.relative_to(PKG).parts
    return rel[0] if len(rel) > 1 else "foundations"


MODULES = sorted(p for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layout(path):
    me = owner(path)
    for line, part in spkid_imports(path):
        if part in FOUNDATIONS or part == me or part == "__version__":
            continue
        if me == "foundations":
            allowed = set()
        else:
            allowed = ALLOWED[me]
        assert part in allowed, (
            f"{path.relative_to(ROOT)}:{line} imports spkid.{part}, which spkid.{me} may not import "
            f"(allowed: {sorted(allowed) or 'foundations only'})")


# a stage's step (a verb and its object, docs/design.md "Code map") imports its method; nothing
# in the package imports a step: the command lines under steps/ do
STEP_MODULES = {"spkid.eval.extract_set", "spkid.eval.score_set", "spkid.eval.fuse_systems", "spkid.eval.score_files"}


def test_no_module_of_the_package_imports_a_step():
    found = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module, *(f"{node.module}.{a.name}" for a in node.names)] \
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names if n in STEP_MODULES]
    assert not found
    assert all((PKG / "eval" / f"{m.rsplit('.', 1)[1]}.py").is_file() for m in STEP_MODULES)


def test_every_subpackage_states_its_rule():
    for sub in ALLOWED:
        doc = ast.get_docstring(ast.parse((PKG / sub / "__init__.py").read_text())) or ""
        assert "import" in doc.lower(), f"spkid/{sub}/__init__.py must say what it may import"


def test_the_package_never_runs_its_own_scripts():
    for path in MODULES:
        text = path.read_text()
        for script_dir in ("steps/", "local/", "utils/"):
            for line_no, line in enumerate(text.splitlines(), 1):
                if script_dir in line and ("subprocess" in line or "run(" in line or "Popen" in line):
                    raise AssertionError(f"{path.relative_to(ROOT)}:{line_no} runs a script: {line.strip()}")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_a_reader_cannot_hold(path):
    lines = len(path.read_text().splitlines())
    assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines: split it by concern (at most 400)"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_function_a_reader_cannot_hold(path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            assert lines <= 60, (f"{path.relative_to(ROOT)}:{node.lineno} {node.name} has {lines} lines: split it "
                                 f"into steps that read like what it does (at most 60)")
