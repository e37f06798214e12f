"""The build's one step beyond pyproject.toml: the codec's hot modules compiled with mypyc.

Every ingested frame runs through these modules (`decode` → canonical events → `wire.encode`);
compiled, the same Python source runs 1.1-1.4x faster (docs/benchmarks.md, "the compiled build").
They are plain, `mypy --strict` typed Python, and stay importable as such: an editable install
(`pip install -e .`, what `./dev` makes) is never compiled, so an edit takes effect at once (a
compiled module beside its source would shadow the edit); `GATEWAY_PURE_PYTHON=1` builds a
wheel without compiling too.

Rules a compiled module keeps (mypyc's; `tests/test_build.py` and the suite run on a compiled
build, `./dev test --compiled`, check them): it defines no `msgspec.Struct` (msgspec reads a
Struct's annotations, which mypyc does not keep: those live in the dialects' `native`/`frames`
modules), and mypy finds no unreachable code in it (what mypy takes for unreachable, mypyc
compiles as such).

setuptools runs this file as `__main__`; `tests/test_build.py` imports it for
`compiled_modules` alone.
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path

from setuptools import setup


def compiled_modules() -> list[str]:
    """The source files of the modules pyproject.toml's mypy override with `warn_unreachable`
    names: the modules compiled are the modules type-checked as compiled ones, one list."""
    with open(Path(__file__).parent / "pyproject.toml", "rb") as file:
        overrides = tomllib.load(file)["tool"]["mypy"]["overrides"]
    (modules,) = [o["module"] for o in overrides if o.get("warn_unreachable")]
    return [name.replace(".", "/") + ".py" for name in modules]


def ext_modules() -> list[object]:
    if os.environ.get("GATEWAY_PURE_PYTHON") == "1":
        return []
    if {"editable_wheel", "develop"} & set(sys.argv):  # the PEP 660 hook's and the old one's
        return []
    from mypyc.build import mypycify

    return list(mypycify(compiled_modules(), opt_level="3"))


if __name__ == "__main__":
    setup(ext_modules=ext_modules())
