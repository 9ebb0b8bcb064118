"""The core package runs without the `local` extra (noida-db, chdb): the image installs only `pip install .`.

Each check runs in a fresh interpreter in which those two packages cannot be imported, as in the image.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from services.stack import free_port

ROOT = Path(__file__).resolve().parent.parent
LOCAL_ONLY = ("noida-db", "chdb", "chdb-core", "clickhouse-connect[chdb]")
# Makes the local engines absent, as if not installed: importing them raises ModuleNotFoundError.
WITHOUT_LOCAL = """
import importlib.abc, sys
class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("noida_db", "chdb", "chdb_core"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Absent())
"""


def without_local(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "OMNITRAIL_STATE_DIR": str(tmp_path),
           "OMNITRAIL_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    return subprocess.run([sys.executable, "-c", WITHOUT_LOCAL + code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_local_engines_are_only_in_the_local_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = lambda deps: {d.partition("==")[0] for d in deps}  # noqa: E731
    assert not names(project["dependencies"]) & set(LOCAL_ONLY)
    assert "clickhouse-connect" in names(project["dependencies"])
    assert names(project["optional-dependencies"]["local"]) == set(LOCAL_ONLY)


def test_every_module_imports_without_the_local_engines(tmp_path):
    result = without_local("""
import pkgutil, importlib
for package in ("schemas", "projections", "consumers", "services"):
    for module in pkgutil.walk_packages(importlib.import_module(package).__path__, package + "."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
print("imported")
""", tmp_path)
    assert result.stdout.strip() == "imported", result.stderr


def test_stack_up_and_an_embedded_store_name_the_extra_to_install(tmp_path):
    result = without_local("""
from projections.store import connect
try:
    connect("chdb:///nowhere")
except ImportError as exc:
    print(exc)
from services.cli import app
app(["stack", "up"])
""", tmp_path)
    assert "chdb:///nowhere is an embedded ClickHouse, which needs chdb: pip install 'omnitrail[local]'" in result.stdout
    assert result.returncode == 1
    assert "the local broker (noida-db) is not installed: pip install 'omnitrail[local]'" in result.stderr
