"""The build's rules (setup.py, pyproject.toml), checked on the sources: a break here would
otherwise show only when a wheel is built, or as a compiled module that behaves differently."""

from __future__ import annotations

import ast
import importlib.util
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def compiled_sources() -> list[str]:
    """setup.py's own list of the files it compiles, relative to the project's root."""
    spec = importlib.util.spec_from_file_location("gateway_setup", ROOT / "setup.py")
    assert spec is not None and spec.loader is not None
    setup = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(setup)
    return list(setup.compiled_modules())


def test_the_build_environment_has_every_dependency_for_its_types() -> None:
    requires = set(PYPROJECT["build-system"]["requires"])
    missing = [d for d in PYPROJECT["project"]["dependencies"] if d not in requires]
    assert not missing, f"add to build-system.requires (mypyc needs their types): {missing}"


def test_compiled_modules_exist_and_define_no_struct() -> None:
    """msgspec reads a Struct's annotations, which a compiled class does not keep: a Struct in
    a compiled module would decode into dicts. Structs live in the modules left as source."""
    sources = compiled_sources()
    assert "gateway/codec.py" in sources
    for name in sources:
        path = ROOT / name
        assert path.is_file(), f"{name}: no such module"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                assert not any(b.endswith("Struct") for b in bases), f"{name}: {node.name}"
