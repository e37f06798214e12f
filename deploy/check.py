"""The checks no linter does, behind deploy/check.sh (which runs the linters first: hadolint,
check-jsonschema with the compose-spec schema, compose-lint, kubernetes-validate, checkov, gixy).

    python deploy/check.py build WORK   the builder stage: its COPY lines (less .dockerignore,
                                        Docker's own matcher) into WORK/ctx, then its RUN,
                                        making WORK/opt/venv
    python deploy/check.py run WORK     the files against each other and the gateway's settings,
                                        then the runtime stage from WORK/opt/venv

What is left here is the project's own contract: the Dockerfile's steps run without Docker
(here), the compose file, nginx.conf and the manifests agreeing with the Dockerfile, with each
other and with the gateway's settings loader (consistency.py), and the built venv's runtime
behaviour: probes, healthchecks, SIGTERM drain, JSON logs (smoke.py). Run by the `deploy`
group's python (uv.lock): dockerfile-parse, docker's .dockerignore matcher, PyYAML and
crossplane (nginx's parser). Prints nothing on
success; on failure, what failed (and the relevant log) on stderr, and exits 1.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from checking import DEPLOY, IMAGE_VENV, ROOT, CheckFailed, expect, fail, load_yaml, settings_of
from consistency import check_compose, check_k8s, check_nginx
from docker.utils.build import exclude_paths  # type: ignore[import-untyped]
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]
from smoke import check_runtime

BASE_IMAGE = "python:3.11-slim"
"""The image of both stages: the builder's venv runs on the runtime's (the wheel is pure
Python: no compiler needed)."""


# ── the Dockerfile (parsed by dockerfile-parse; linted by hadolint and checkov) ──────────────


def flags_and_rest(value: str) -> tuple[dict[str, str], str]:
    """An instruction's `--flag=value` options and what follows them."""
    flags: dict[str, str] = {}
    rest = value.strip()
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        name, _, flag = token[2:].partition("=")
        flags[name] = flag
        rest = rest.lstrip()
    return flags, rest


def parse_dockerfile() -> dict[str, Any]:
    """The facts the other checks need, and the project's contract for its image."""
    parser = DockerfileParser(
        path=str(ROOT / "Dockerfile"), env_replace=True, parent_env={"PATH": os.environ["PATH"]}
    )
    stages: list[list[tuple[str, str]]] = []
    for item in parser.structure:
        if item["instruction"] == "COMMENT":
            continue
        if item["instruction"] == "FROM":
            stages.append([])
        stages[-1].append((item["instruction"], item["value"]))
    expect(len(stages) == 2, "Dockerfile: want two stages, builder and runtime")
    builder, runtime = stages
    expect(
        builder[0][1].split() == [BASE_IMAGE, "AS", "builder"]
        and runtime[0][1].split()[0] == BASE_IMAGE,
        f"Dockerfile: want `FROM {BASE_IMAGE} AS builder`, then FROM {BASE_IMAGE}",
    )
    facts: dict[str, Any] = {"copies": [], "runs": [], "workdir": "/", "env": parser.envs}
    for word, value in builder[1:]:
        if word == "COPY":
            flags, rest = flags_and_rest(value)
            expect(not flags, f"Dockerfile: builder COPY with flags is not emulated: {value}")
            *sources, dest = shlex.split(rest)
            facts["copies"].append((sources, dest))
        elif word == "RUN":
            facts["runs"].append(flags_and_rest(value)[1])
        elif word == "WORKDIR":
            facts["workdir"] = value
        else:
            fail(f"Dockerfile: builder stage: {word} is not emulated by deploy/check.py")
    expect(
        len(facts["runs"]) == 1 and facts["runs"][0] == f"sh deploy/build-venv.sh {IMAGE_VENV}",
        f"Dockerfile: the builder stage must RUN sh deploy/build-venv.sh {IMAGE_VENV}, only",
    )
    seen = {word: value for word, value in runtime[1:]}
    copies = [value for word, value in runtime[1:] if word in ("COPY", "ADD")]
    expect(
        copies == [f"--from=builder {IMAGE_VENV} {IMAGE_VENV}"],
        f"Dockerfile: the runtime stage must copy only the venv, copies {copies}",
    )
    user = seen.get("USER", "0").split(":")[0]
    expect(user.isdigit(), "Dockerfile: USER must be numeric (Kubernetes runAsNonRoot checks it)")
    facts["uid"] = int(user)
    facts["expose"] = [int(p.split("/")[0]) for p in seen.get("EXPOSE", "").split()]
    facts["stopsignal"] = seen.get("STOPSIGNAL", "SIGTERM")
    facts["cmd"] = json.loads(seen.get("CMD", "[]"))
    flags, rest = flags_and_rest(seen.get("HEALTHCHECK", ""))
    expect(rest.startswith("CMD ["), "Dockerfile: want an exec-form HEALTHCHECK CMD")
    facts["healthcheck"] = json.loads(rest[4:])
    facts["healthcheck_timeout"] = flags.get("timeout", "30s")
    expect(facts["expose"] == [8080], f"Dockerfile: want EXPOSE 8080, have {facts['expose']}")
    expect(facts["cmd"] == ["gateway", "serve"], 'Dockerfile: want CMD ["gateway", "serve"]')
    expect(facts["env"].get("GATEWAY_LOG_FORMAT") == "json", "Dockerfile: want JSON logs")
    expect(
        "/healthz" in " ".join(facts["healthcheck"]),
        "Dockerfile: the HEALTHCHECK must GET /healthz",
    )
    return facts


def make_context(facts: dict[str, Any], ctx: Path) -> None:
    """The builder stage's file system after its COPY lines: what the build context holds (the
    repository less .dockerignore, by Docker's own matcher)."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    sent = exclude_paths(str(ROOT), patterns)
    ctx.mkdir(parents=True)
    for sources, dest in facts["copies"]:
        for source in sources:
            relative = os.path.normpath(source)
            expect((ROOT / relative).exists(), f"Dockerfile: COPY {source}: not in the repository")
            expect(relative in sent, f"Dockerfile: COPY {source}: excluded by .dockerignore")
            target = ctx / dest
            if (ROOT / relative).is_dir():
                files = [p for p in sent if p.startswith(relative + "/")]
                for path in sorted(files):
                    if (ROOT / path).is_file():
                        out = target / Path(path).relative_to(relative)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(ROOT / path, out)
            else:
                if dest.endswith("/") or len(sources) > 1:
                    target = target / Path(relative).name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / relative, target)
    expect(
        not list(ctx.rglob("__pycache__")) and not list(ctx.rglob("*.egg-info")),
        ".dockerignore: lets caches or build leftovers into the image's sources",
    )


def build(work: Path) -> None:
    facts = parse_dockerfile()
    (work / "dockerfile.json").write_text(json.dumps(facts))
    ctx = work / "ctx"
    make_context(facts, ctx)
    venv = work / IMAGE_VENV.lstrip("/")
    command = facts["runs"][0].replace(IMAGE_VENV, str(venv))
    done = subprocess.run(
        ["/bin/sh", "-c", command], cwd=ctx, env=dict(os.environ), capture_output=True, text=True
    )
    if done.returncode != 0:
        fail(f"builder stage: `{facts['runs'][0]}` failed", done.stdout + done.stderr)
    expect((venv / "bin" / "gateway").is_file(), "builder stage: the venv has no `gateway` command")
    # The venv holds exactly the lock's runtime packages and the project, installed as a wheel
    # (not a link back to the build context, which the image does not keep).
    # The [otel] extra too: the image traces when its OTEL_* environment says so.
    probe = (
        "import gateway, msgspec, opentelemetry.exporter.otlp.proto.http.trace_exporter; "
        "print(gateway.__file__, msgspec.__version__)"
    )
    where, _, msgspec_version = (
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", probe], cwd=work, capture_output=True, text=True
        )
        .stdout.strip()
        .partition(" ")
    )
    expect(
        where.startswith(str(venv)), f"builder stage: gateway imports from {where!r}, not the venv"
    )
    wheels = list(venv.glob("lib/python3*/site-packages/chat_dialect_gateway-*.dist-info/WHEEL"))
    expect(len(wheels) == 1, f"builder stage: the project is not installed as a wheel ({wheels})")
    tags = [line for line in wheels[0].read_text().splitlines() if line.startswith("Tag: ")]
    expect(tags == ["Tag: py3-none-any"], f"builder stage: the wheel is not pure Python: {tags}")
    locked = {
        package["name"]: package.get("version")
        for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    }
    expect(
        msgspec_version == locked.get("msgspec"),
        f"builder stage: msgspec {msgspec_version}, uv.lock pins {locked.get('msgspec')}",
    )


def run(work: Path) -> None:
    facts = json.loads((work / "dockerfile.json").read_text())
    venv_python = work / IMAGE_VENV.lstrip("/") / "bin" / "python"
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    gateways = check_compose(compose, facts, venv_python)
    heartbeat = settings_of(venv_python, {})["ws_heartbeat_s"]
    check_nginx(gateways, facts["expose"][0], heartbeat)
    check_k8s(facts, venv_python)
    check_runtime(work, facts, compose)


def main() -> int:
    mode, work = sys.argv[1], Path(sys.argv[2])
    try:
        {"build": build, "run": run}[mode](work)
    except CheckFailed as exc:
        print(f"deploy/check: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
