"""A copy of the recipe in a temporary directory, for tests that run ./run.sh (it writes data/,
exp/ and corpus/ beside itself): the scripts and confs copied, the package and .venv linked."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def copy_recipe(dest: Path) -> Path:
    for name in ("run.sh", "path.sh", "cmd.sh", "requirements.txt"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("conf", "utils", "steps", "local"):
        shutil.copytree(ROOT / name, dest / name)
    for name in ("spkid", ".venv"):
        (dest / name).symlink_to(ROOT / name)
    return dest


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) without its Python settings (run.sh sources path.sh)."""
    return {k: v for k, v in (env or os.environ).items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run_in(recipe: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=recipe, env=clean_env(env), capture_output=True, text=True, timeout=timeout)
