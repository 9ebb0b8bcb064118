"""Imports point one way: schemas <- projections <- consumers <- services (contract in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).parent / "lint-imports"


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"})


def test_the_layers_contract_is_kept():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_way_import_breaks_the_contract(tmp_path):
    for package in ("schemas", "projections", "consumers", "services"):
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__", "json"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    loop = tmp_path / "consumers" / "worker" / "loop.py"
    loop.write_text("from services.settings import Settings  # the wrong way\n" + loop.read_text())
    result = lint(tmp_path)
    assert result.returncode != 0 and "consumers.worker.loop -> services.settings" in result.stdout
