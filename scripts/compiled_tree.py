"""Make a copy of the working tree whose hot modules are compiled, as a wheel ships them.

    python scripts/compiled_tree.py DIR

Copies the files git tracks (and new, unignored ones) to DIR, installs setup.py's build
requirements (pyproject.toml's `build-system.requires`) into the running interpreter's
environment, and compiles setup.py's modules in place there. Code run from DIR (tests, the
benchmark's processes) then imports the compiled modules, as an installed wheel would, while
the working tree itself never holds a compiled module that could shadow an edit of its source.
The running interpreter is the one the modules are compiled for. Prints DIR.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tracked_files() -> list[str]:
    """The working tree's files as git sees them: tracked, or new and not ignored."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, check=True, capture_output=True,
    ).stdout  # fmt: skip
    return [name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def build(target: Path) -> Path:
    """`target` made again as the compiled copy of the working tree; returns it."""
    target = target.resolve()
    if target == ROOT or ROOT.is_relative_to(target):
        raise SystemExit(f"compiled_tree: refusing to replace {target}")
    shutil.rmtree(target, ignore_errors=True)
    for name in tracked_files():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target / name)
    with open(ROOT / "pyproject.toml", "rb") as file:
        requires = tomllib.load(file)["build-system"]["requires"]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    subprocess.run([*pip, *requires], check=True)
    compile_ = [sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"]
    result = subprocess.run(compile_, cwd=target, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"compiled_tree: compiling failed (exit {result.returncode})")
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    print(build(Path(sys.argv[1])))
