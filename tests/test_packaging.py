"""Packaging facts checked on the sources: the lock covers what pyproject.toml asks for, the
build backend's pin follows the lock, and the package runs as `python -m gateway`.
(deploy/check.sh checks the built wheel itself: pure Python, installed from the lock.)"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

from gateway.config import Settings

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((ROOT / "uv.lock").read_text())
LOCKED = {p["name"]: p for p in LOCK["package"]}


def _name(requirement: str) -> str:
    """A requirement's normalised project name (PEP 503): `redis[hiredis]>=5` → `redis`."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name is not None, requirement
    return re.sub(r"[-_.]+", "-", name.group()).lower()


def test_every_dependency_and_group_member_is_locked_with_hashes() -> None:
    wanted = [*PYPROJECT["project"]["dependencies"]]
    for members in PYPROJECT["dependency-groups"].values():
        wanted += [m for m in members if isinstance(m, str)]
    for requirement in wanted:
        package = LOCKED.get(_name(requirement))
        assert package is not None, f"uv.lock has no {requirement}: run ./dev lock"
        files = [package.get("sdist"), *package.get("wheels", [])]
        assert all(f["hash"].startswith("sha256:") for f in files if f), package["name"]


def test_the_lock_covers_every_python_the_project_supports() -> None:
    assert LOCK["requires-python"] == PYPROJECT["project"]["requires-python"]


def test_the_build_backend_pin_is_the_locked_setuptools() -> None:
    """`./dev lock` moves the pin; a hand edit of one without the other fails here."""
    locked = LOCKED["setuptools"]["version"]
    assert PYPROJECT["build-system"]["requires"] == [f"setuptools=={locked}"]
    assert PYPROJECT["tool"]["uv"]["build-constraint-dependencies"] == [f"setuptools=={locked}"]


def test_uv_itself_is_pinned_with_hashes() -> None:
    text = (ROOT / "scripts" / "uv-bootstrap.txt").read_text()
    assert re.search(r"^uv==\d+\.\d+\.\d+ ", text, re.MULTILINE)
    assert "--hash=sha256:" in text


def test_python_dash_m_gateway_lists_every_setting_in_serve_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for key in Settings.__struct_fields__:
        if key != "dialect_settings":
            assert f"GATEWAY_{key.upper()} " in done.stdout, key
    assert "GATEWAY_<DIALECT>_URL" in done.stdout
