"""The checks behind deploy/check.sh: the Dockerfile's steps without Docker, the manifests
without a cluster. Read the Dockerfile, compose file and manifests; repeat none of their values.

    python deploy/check.py build WORK   the builder stage: its COPY lines (with .dockerignore)
                                        into WORK/ctx, then its RUN, making WORK/opt/venv
    python deploy/check.py run WORK     compose, nginx.conf and deploy/k8s, then the runtime
                                        stage from WORK/opt/venv (needs PyYAML and
                                        kubernetes-validate beside the python running it)

Stdlib only for `build`; `run` also imports yaml. Prints nothing on success; on failure, what
failed (and the relevant log) on stderr, and exits 1.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGE_VENV = "/opt/venv"
BASE_IMAGE = "python:3.11-slim"
BUILDER_IMAGE = "python:3.11-slim"
"""The builder's image: the same as `BASE_IMAGE`, since the venv it makes runs there (the wheel is
pure Python: no compiler needed)."""


class CheckFailed(Exception):
    pass


def fail(message: str, log: str | None = None) -> NoReturn:
    if log:
        message += "\n" + textwrap.indent(log.rstrip(), "  | ")
    raise CheckFailed(message)


def expect(ok: object, message: str) -> None:
    if not ok:
        fail(message)


# ── Dockerfile ──────────────────────────────────────────────────────────────────────────────


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: continuations joined, comments dropped."""
    out: list[tuple[str, str]] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # comment lines inside a continuation are dropped, as Docker does
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    if current.strip():
        word, _, rest = current.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions:
        if instruction[0] == "FROM":
            result.append([])
        expect(result, "Dockerfile: an instruction before the first FROM")
        result[-1].append(instruction)
    return result


def flags_and_args(arguments: str) -> tuple[dict[str, str], str]:
    """`--flag=value ... rest` → ({flag: value}, rest)."""
    flags: dict[str, str] = {}
    rest = arguments
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        name, _, value = token[2:].partition("=")
        flags[name] = value
        rest = rest.lstrip()
    return flags, rest


def exec_or_shell(arguments: str) -> list[str]:
    """An exec-form (JSON array) command as argv, a shell-form one as ["sh", "-c", text]."""
    if arguments.startswith("["):
        argv = json.loads(arguments)
        expect(
            isinstance(argv, list) and all(isinstance(a, str) for a in argv),
            f"not a JSON array of strings: {arguments}",
        )
        return list(argv)
    return ["/bin/sh", "-c", arguments]


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def env_pairs(arguments: str, env: dict[str, str]) -> dict[str, str]:
    """An ENV instruction's KEY=VALUE pairs, `$VAR` expanded against the env before it."""
    pairs: dict[str, str] = {}
    tokens = shlex.split(arguments)
    if tokens and "=" not in tokens[0]:  # legacy `ENV KEY value`
        return {tokens[0]: expand(" ".join(tokens[1:]), env)}
    for token in tokens:
        key, sep, value = token.partition("=")
        expect(sep, f"Dockerfile: ENV {arguments!r}: {token!r} is not KEY=VALUE")
        pairs[key] = expand(value, env)
    return pairs


def parse_dockerfile() -> dict[str, Any]:
    """The facts the checks need, after checking the Dockerfile's shape."""
    path = ROOT / "Dockerfile"
    expect(path.is_file(), "Dockerfile: missing")
    parsed = stages(dockerfile_instructions(path.read_text()))
    expect(len(parsed) == 2, "Dockerfile: want two stages, builder and runtime")
    builder, runtime = parsed
    builder_from = builder[0][1].split()
    expect(
        builder_from[0] == BUILDER_IMAGE
        and [w.lower() for w in builder_from[1:]] == ["as", "builder"],
        f"Dockerfile: first stage must be `FROM {BUILDER_IMAGE} AS builder`, is {builder_from}",
    )
    expect(
        runtime[0][1].split()[0] == BASE_IMAGE,
        f"Dockerfile: runtime stage must be FROM {BASE_IMAGE}, is {runtime[0][1]}",
    )

    copies: list[tuple[list[str], str]] = []
    runs: list[str] = []
    workdir = "/"
    builder_env: dict[str, str] = {}
    for word, arguments in builder[1:]:
        if word == "COPY":
            flags, rest = flags_and_args(arguments)
            expect(
                not flags, f"Dockerfile: builder COPY with flags not supported here: {arguments}"
            )
            parts = rest.split()
            copies.append((parts[:-1], parts[-1]))
        elif word == "RUN":
            runs.append(flags_and_args(arguments)[1])
        elif word == "WORKDIR":
            workdir = arguments
        elif word == "ENV":
            builder_env.update(env_pairs(arguments, {**os.environ, **builder_env}))
        elif word not in ("ARG", "LABEL"):
            fail(f"Dockerfile: builder stage: {word} is not emulated by deploy/check.py")
    expect(
        len(runs) == 1 and "deploy/build-venv.sh" in runs[0] and IMAGE_VENV in runs[0],
        "Dockerfile: the builder stage must RUN deploy/build-venv.sh /opt/venv (and only that)",
    )

    facts: dict[str, Any] = {
        "copies": copies,
        "run": runs[0],
        "workdir": workdir,
        "builder_env": builder_env,
        "env": {},
        "expose": [],
    }
    runtime_copies = []
    for word, arguments in runtime[1:]:
        if word in ("COPY", "ADD"):
            runtime_copies.append(arguments)
        elif word == "ENV":
            facts["env"].update(env_pairs(arguments, {**os.environ, **facts["env"]}))
        elif word == "USER":
            facts["user"] = arguments
        elif word == "EXPOSE":
            facts["expose"] += [int(p.split("/")[0]) for p in arguments.split()]
        elif word == "STOPSIGNAL":
            facts["stopsignal"] = arguments
        elif word == "CMD":
            facts["cmd"] = exec_or_shell(arguments)
        elif word == "ENTRYPOINT":
            fail("Dockerfile: no ENTRYPOINT expected (the CMD is the command)")
        elif word == "HEALTHCHECK":
            flags, rest = flags_and_args(arguments)
            expect(rest.startswith("CMD "), f"Dockerfile: HEALTHCHECK without CMD: {arguments}")
            facts["healthcheck"] = exec_or_shell(rest[4:].strip())
            facts["healthcheck_timeout"] = flags.get("timeout", "30s")
    expect(
        runtime_copies == [f"--from=builder {IMAGE_VENV} {IMAGE_VENV}"],
        f"Dockerfile: the runtime stage must copy only the venv, copies {runtime_copies}",
    )
    user = facts.get("user", "root").split(":")[0]
    expect(user not in ("root", "0"), "Dockerfile: the runtime stage must set a non-root USER")
    expect(user.isdigit(), "Dockerfile: USER must be numeric (Kubernetes runAsNonRoot checks it)")
    facts["uid"] = int(user)
    expect(facts["expose"] == [8080], f"Dockerfile: want EXPOSE 8080, have {facts['expose']}")
    expect(facts.get("stopsignal") == "SIGTERM", "Dockerfile: want STOPSIGNAL SIGTERM")
    expect(facts.get("cmd") == ["gateway", "serve"], 'Dockerfile: want CMD ["gateway", "serve"]')
    expect(
        facts["env"].get("GATEWAY_LOG_FORMAT") == "json", "Dockerfile: want GATEWAY_LOG_FORMAT=json"
    )
    expect("healthcheck" in facts, "Dockerfile: no HEALTHCHECK")
    expect(
        any("urllib" in a for a in facts["healthcheck"])
        and "/healthz" in " ".join(facts["healthcheck"]),
        "Dockerfile: the HEALTHCHECK must GET /healthz with urllib",
    )
    return facts


# ── the build context ───────────────────────────────────────────────────────────────────────


def ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (negated, regex) in order; the last match decides, as in Docker."""
    path = ROOT / ".dockerignore"
    expect(path.is_file(), ".dockerignore: missing")
    out = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        out.append((negated, re.compile(regex + "$")))
    return out


def ignored(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for negated, regex in patterns:
        if any(regex.match(p) for p in prefixes):
            result = not negated
    return result


def make_context(facts: dict[str, Any], ctx: Path) -> None:
    """The builder stage's file system after its COPY lines: from the repo, less .dockerignore."""
    patterns = ignore_patterns()
    ctx.mkdir(parents=True)
    for sources, dest in facts["copies"]:
        for source in sources:
            src = ROOT / source
            relative = os.path.normpath(source)
            expect(src.exists(), f"Dockerfile: COPY {source}: no such file in the repo")
            expect(
                not ignored(relative, patterns),
                f"Dockerfile: COPY {source}: excluded by .dockerignore",
            )
            target = ctx / dest
            if src.is_dir():
                for path in sorted(src.rglob("*")):
                    rel = path.relative_to(ROOT).as_posix()
                    if path.is_file() and not ignored(rel, patterns):
                        out = target / path.relative_to(src)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, out)
            else:
                if dest.endswith("/") or len(sources) > 1:
                    target = target / src.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
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
    command = facts["run"].replace(IMAGE_VENV, str(venv))
    env = {**os.environ, **facts["builder_env"]}
    done = subprocess.run(
        ["/bin/sh", "-c", command], cwd=ctx, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        fail(
            f"builder stage: `{facts['run']}` failed ({done.returncode})", done.stdout + done.stderr
        )
    expect((venv / "bin" / "gateway").is_file(), "builder stage: the venv has no `gateway` command")
    # The venv holds exactly the lock's runtime packages and the project, installed as a wheel
    # (not a link back to the build context, which the image does not keep).
    probe = "import gateway, msgspec; print(gateway.__file__, msgspec.__version__)"
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
    site = venv / "lib"
    wheels = list(site.glob("python3*/site-packages/chat_dialect_gateway-*.dist-info/WHEEL"))
    expect(len(wheels) == 1, f"builder stage: the project is not installed as a wheel ({wheels})")
    tags = [line for line in wheels[0].read_text().splitlines() if line.startswith("Tag: ")]
    expect(tags == ["Tag: py3-none-any"], f"builder stage: the wheel is not pure Python: {tags}")
    locked = {
        package["name"]: package["version"]
        for package in tomllib.loads((ROOT / "uv.lock").read_text())["package"]
        if "version" in package
    }
    expect(
        msgspec_version == locked.get("msgspec"),
        f"builder stage: msgspec {msgspec_version}, uv.lock pins {locked.get('msgspec')}",
    )


# ── the runtime stage ───────────────────────────────────────────────────────────────────────


def runtime_env(facts: dict[str, Any], work: Path) -> dict[str, str]:
    """The image's environment, /opt/venv mapped to WORK's venv; no GATEWAY_* from the host."""
    venv = str(work / IMAGE_VENV.lstrip("/"))
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GATEWAY_") and k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    for key, value in facts["env"].items():
        env[key] = value.replace(IMAGE_VENV, venv)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def hs256_token(secret: str, claims: dict[str, Any]) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def seconds(value: str | int | float) -> float:
    """`30`, `30s`, `1m30s`, `1h`, `500ms` → seconds."""
    if isinstance(value, int | float):
        return float(value)
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)?", value.strip()):
        total += float(number) * {"ms": 0.001, "h": 3600, "m": 60, "s": 1, "": 1}[unit]
    return total


def run_command(
    argv: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    resolved = shutil.which(argv[0], path=env["PATH"]) or argv[0]
    return subprocess.run(
        [resolved, *argv[1:]], env=env, capture_output=True, text=True, timeout=timeout + 5
    )


def settings_of(venv_python: Path, environ: dict[str, str]) -> dict[str, Any]:
    """The gateway's own settings loader on `environ` (so its validation is the check)."""
    code = (
        "import json, sys\n"
        "from gateway.config import ConfigError, Settings, load\n"
        "try:\n"
        "    s = load(environ=json.load(sys.stdin))\n"
        "except ConfigError as exc:\n"
        "    sys.exit(f'configuration error: {exc}')\n"
        "print(json.dumps({'fields': list(Settings.__struct_fields__),"
        " **{k: getattr(s, k) for k in ('shutdown_timeout_s', 'ws_heartbeat_s', 'port',"
        " 'lease_ttl_s', 'redis_url')}}))\n"
    )
    done = subprocess.run(
        [str(venv_python), "-c", code], input=json.dumps(environ), capture_output=True, text=True
    )
    if done.returncode != 0:
        fail("gateway settings loader rejected the settings", done.stderr)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


INSTALLED_DIALECTS = """
import json
from importlib.metadata import entry_points
eps = entry_points(group="gateway.adapters")
print(json.dumps({"all": [e.name for e in eps],
                  "served": [e.name for e in eps if not e.load()().test_only]}))
"""

WS_CLIENT = """
import asyncio, sys, aiohttp
async def main(url, token):
    headers = {"Authorization": "Bearer " + token}
    async with aiohttp.ClientSession() as s, s.ws_connect(url, headers=headers) as ws:
        await ws.send_json({"op": "subscribe", "conversation": "*"})
        for _ in range(5):
            m = await asyncio.wait_for(ws.receive_json(), 10)
            if m.get("op") == "subscribed":
                break
        else:
            sys.exit(f"no subscribed: {m}")
        print("subscribed", flush=True)
        while True:
            m = await ws.receive()
            if m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                          aiohttp.WSMsgType.CLOSED):
                print("closed", ws.close_code, flush=True)
                return
asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 60))
"""


def check_runtime(work: Path, facts: dict[str, Any], compose: dict[str, Any]) -> None:
    venv = work / IMAGE_VENV.lstrip("/")
    env = runtime_env(facts, work)
    port = free_port()
    env["GATEWAY_PORT"] = str(port)
    env["GATEWAY_HOST"] = "127.0.0.1"  # the image listens on 0.0.0.0; here loopback will do
    # What every deployment adds to the image (the Secret, or compose's environment): the key
    # client tokens are signed with. Harmless to a gateway that does no auth.
    secret = os.urandom(32).hex()
    env["GATEWAY_JWT_SECRET"] = secret
    token = hs256_token(
        secret, {"sub": "deploy-check", "read": ["*"], "exp": int(time.time()) + 600}
    )
    auth = {"Authorization": f"Bearer {token}"}
    settings = settings_of(venv / "bin" / "python", env)
    drain = float(settings["shutdown_timeout_s"])
    base = f"http://127.0.0.1:{port}"
    rundir = work / "run"
    rundir.mkdir(exist_ok=True)
    log_path = work / "gateway.log"
    with open(log_path, "wb") as log_file:
        cmd = facts["cmd"]
        server = subprocess.Popen(
            [shutil.which(cmd[0], path=env["PATH"]) or cmd[0], *cmd[1:]],
            cwd=rundir,  # not the sources: everything must come from the venv
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    client: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 30
        pending = ["/healthz", "/readyz"]
        while pending:
            if server.poll() is not None:
                fail(
                    f"`{' '.join(cmd)}` exited ({server.returncode}) before it was ready",
                    log_path.read_text(),
                )
            expect(time.monotonic() < deadline, f"{pending} did not answer 200 within 30 s")
            try:
                if get(base + pending[0])[0] == 200:
                    pending.pop(0)
                    continue
            except OSError:
                pass
            time.sleep(0.2)

        # The installed wheel carries every dialect the project declares, and serves the ones
        # that are not test-only.
        declared = set(
            tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
                "gateway.adapters"
            ]
        )
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", INSTALLED_DIALECTS],
            env=env,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            fail("the venv cannot load its dialects", done.stderr)
        installed = json.loads(done.stdout)
        expect(
            set(installed["all"]) == declared,
            f"the wheel's dialects {sorted(installed['all'])} != pyproject's {sorted(declared)}",
        )
        status, body = get(base + "/v1/dialects", headers=auth)
        loaded = json.loads(body)
        names = {d["name"] for d in loaded["dialects"]}
        expect(
            status == 200 and names == set(installed["served"]) and not loaded["failed"],
            f"/v1/dialects: want {sorted(installed['served'])} loaded, none failed; got {loaded}",
        )

        # The image's HEALTHCHECK and compose's gateway healthcheck, as they are written.
        timeout = seconds(facts["healthcheck_timeout"])
        done = run_command(facts["healthcheck"], env, timeout)
        if done.returncode != 0:
            fail(
                "the Dockerfile's HEALTHCHECK failed against a healthy gateway",
                done.stdout + done.stderr,
            )
        for name, service in compose["services"].items():
            if service.get("image") == compose_gateway_image(compose):
                test = service["healthcheck"]["test"]
                argv = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
                done = run_command(argv, env, seconds(service["healthcheck"]["timeout"]))
                if done.returncode != 0:
                    fail(
                        f"compose: {name}'s healthcheck failed against a ready gateway",
                        done.stdout + done.stderr,
                    )

        # SIGTERM with a subscribed socket: closed 1001, exit 0 within the drain time.
        client = subprocess.Popen(
            [str(venv / "bin" / "python"), "-c", WS_CLIENT, f"ws://127.0.0.1:{port}/v1/ws", token],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None
        line = client.stdout.readline().strip()
        if line != "subscribed":
            fail(f"WebSocket client did not subscribe: {line!r}", client.communicate()[1])
        stop = getattr(signal, facts["stopsignal"])
        started = time.monotonic()
        server.send_signal(stop)
        try:
            code = server.wait(timeout=drain + 5)
        except subprocess.TimeoutExpired:
            fail(
                f"the gateway did not exit within {drain + 5:.0f} s of {facts['stopsignal']}",
                log_path.read_text(),
            )
        elapsed = time.monotonic() - started
        logs = log_path.read_text()
        expect(code == 0, f"the gateway exited {code} on {facts['stopsignal']}\n{logs}")
        expect(
            elapsed <= drain + 1.5,
            f"the gateway took {elapsed:.1f} s to exit; the drain time is {drain:.0f} s",
        )
        out, err = client.communicate(timeout=10)
        expect(
            out.strip() == "closed 1001",
            f"WebSocket on shutdown: want `closed 1001`, got {out!r} {err}",
        )

        done = run_command(facts["healthcheck"], env, timeout)
        expect(done.returncode != 0, "the HEALTHCHECK passed with no gateway running")

        bad = []
        for text in logs.splitlines():
            try:
                expect(isinstance(json.loads(text), dict), "")
            except (ValueError, CheckFailed):
                bad.append(text)
        expect(logs.strip() and not bad, f"gateway log lines that are not JSON: {bad[:5]}")
    finally:
        for process in (client, server):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


# ── compose and nginx ───────────────────────────────────────────────────────────────────────


def compose_gateway_image(compose: dict[str, Any]) -> str | None:
    for service in compose["services"].values():
        if "build" in service:
            return str(service.get("image"))
    return None


def interpolated(value: str) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR:?error}`: the default, else a stand-in."""

    def one(match: re.Match[str]) -> str:
        default = re.match(r"[^:?-]*:?-(.*)", match.group(1))
        return default.group(1) if default else "stand-in-" + "x" * 40

    return re.sub(r"\$\{([^}]*)\}", one, value)


def check_compose(compose: dict[str, Any], facts: dict[str, Any], venv_python: Path) -> list[str]:
    services = compose.get("services") or {}
    where = "deploy/docker-compose.yml"
    gateways = [n for n, s in services.items() if "build" in s]
    expect(len(gateways) >= 2, f"{where}: want two gateway replicas built from the Dockerfile")
    expect("redis" in services, f"{where}: no redis service")
    redis = services["redis"]
    expect(str(redis.get("image", "")).startswith("redis:7"), f"{where}: redis must be Redis 7")
    command = " ".join(redis.get("command") or [])
    expect("--appendonly yes" in command, f"{where}: redis must run with --appendonly yes")
    for name, service in services.items():
        test = (service.get("healthcheck") or {}).get("test")
        expect(
            isinstance(test, list) and test and test[0] in ("CMD", "CMD-SHELL"),
            f"{where}: {name}: no healthcheck",
        )
    port = facts["expose"][0]
    for name in gateways:
        service = services[name]
        context = (DEPLOY / service["build"]["context"]).resolve()
        expect(
            context == ROOT
            and (context / service["build"].get("dockerfile", "Dockerfile")).is_file(),
            f"{where}: {name}: build must use the project's Dockerfile",
        )
        env = {k: interpolated(str(v)) for k, v in (service.get("environment") or {}).items()}
        expect(
            env.get("GATEWAY_REDIS_URL") == "redis://redis:6379/0",
            f"{where}: {name}: GATEWAY_REDIS_URL must be redis://redis:6379/0",
        )
        settings = settings_of(venv_python, env)
        expect(
            settings["port"] == port, f"{where}: {name}: port {settings['port']} != EXPOSE {port}"
        )
        expect(
            (service.get("depends_on") or {}).get("redis", {}).get("condition")
            == "service_healthy",
            f"{where}: {name}: must depend on redis being healthy",
        )
        expect(
            seconds(service.get("stop_grace_period", "10s")) > settings["shutdown_timeout_s"],
            f"{where}: {name}: stop_grace_period must exceed GATEWAY_SHUTDOWN_TIMEOUT_S",
        )
    lbs = [n for n, s in services.items() if n not in gateways and n != "redis"]
    expect(len(lbs) == 1, f"{where}: want one load balancer service, have {lbs}")
    lb = services[lbs[0]]
    expect(lb.get("ports"), f"{where}: {lbs[0]}: publishes no port")
    for name in gateways:
        expect(
            (lb.get("depends_on") or {}).get(name, {}).get("condition") == "service_healthy",
            f"{where}: {lbs[0]}: must depend on {name} being healthy",
        )
    mounts = [str(v).split(":")[0] for v in lb.get("volumes") or []]
    expect(
        any((DEPLOY / m).resolve() == DEPLOY / "nginx.conf" for m in mounts),
        f"{where}: {lbs[0]}: must mount deploy/nginx.conf",
    )
    return gateways


def check_nginx(gateways: list[str], port: int, heartbeat: float) -> None:
    where = "deploy/nginx.conf"
    text = re.sub(r"#.*", "", (DEPLOY / "nginx.conf").read_text())
    upstreams = re.findall(r"upstream\s+(\w+)\s*\{([^}]*)\}", text)
    expect(len(upstreams) == 1, f"{where}: want one upstream block")
    name, body = upstreams[0]
    servers = re.findall(r"^\s*server\s+([^\s;]+)", body, re.M)
    expect(
        sorted(servers) == sorted(f"{g}:{port}" for g in gateways),
        f"{where}: upstream servers {servers} are not the compose replicas on :{port}",
    )
    expect(
        not re.search(r"^\s*(ip_hash|hash|sticky)\b", body, re.M),
        f"{where}: no sticky sessions wanted",
    )
    expect(f"proxy_pass http://{name}" in text, f"{where}: nothing proxies to the upstream")
    expect(
        re.search(r"proxy_set_header\s+Upgrade\s+\$http_upgrade", text)
        and re.search(r"proxy_set_header\s+Connection\s+\$connection_upgrade", text)
        and "proxy_http_version 1.1" in text,
        f"{where}: WebSocket upgrades are not passed through",
    )
    ws = re.search(r"location\s+=?\s*/v1/ws\s*\{([^}]*)\}", text)
    expect(ws, f"{where}: no location for /v1/ws")
    timeout = re.search(r"proxy_read_timeout\s+(\w+);", ws.group(1)) if ws else None
    expect(
        timeout and seconds(timeout.group(1)) >= 10 * heartbeat,
        f"{where}: /v1/ws needs a long proxy_read_timeout (≥ 10 heartbeats of {heartbeat:.0f} s)",
    )


# ── Kubernetes ──────────────────────────────────────────────────────────────────────────────


def check_k8s(work: Path, facts: dict[str, Any], venv_python: Path) -> None:
    k8s = DEPLOY / "k8s"
    files = sorted(p for p in k8s.glob("*.yaml") if p.name != "kustomization.yaml")
    kustomization = load_yaml(k8s / "kustomization.yaml")
    expect(
        sorted(kustomization["resources"])
        == sorted(p.name for p in files if "example" not in p.name),
        "deploy/k8s/kustomization.yaml must list every manifest but the examples",
    )
    # Schemas ship in the package: a proxy that goes nowhere proves no network is needed.
    offline = {
        **os.environ,
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "",
        "no_proxy": "",
    }
    tool = Path(sys.executable).parent / "kubernetes-validate"  # installed beside this python
    for version in ("1.29.0", None):  # the oldest we support, and the newest the tool knows
        argv = [str(tool), "--strict", "--quiet", *([] if version is None else ["-k", version])]
        done = subprocess.run(
            [*argv, *map(str, files)], env=offline, capture_output=True, text=True
        )
        if done.returncode != 0 or done.stdout.strip() or done.stderr.strip():
            fail(
                f"kubernetes-validate {version or '(latest)'} rejected deploy/k8s",
                done.stdout + done.stderr,
            )

    docs: dict[str, dict[str, Any]] = {}
    for path in files:
        for doc in load_yaml(path, every=True):
            if doc:
                docs[doc["kind"]] = doc
    for kind in (
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ConfigMap",
        "Secret",
    ):
        expect(kind in docs, f"deploy/k8s: no {kind}")
    deployment = docs["Deployment"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    expect(spec["replicas"] == 2, "Deployment: want 2 replicas")
    (container,) = pod["containers"]
    expect(
        "command" not in container and "args" not in container,
        "Deployment: run the image's CMD (no command/args)",
    )
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    expect(list(ports.values()) == facts["expose"], "Deployment: containerPort != EXPOSE")

    def probe_path(name: str) -> str:
        probe = container[name]["httpGet"]
        expect(probe["port"] in ports or probe["port"] in ports.values(), f"{name}: unknown port")
        return str(probe["path"])

    expect(probe_path("livenessProbe") == "/healthz", "Deployment: liveness must GET /healthz")
    expect(probe_path("readinessProbe") == "/readyz", "Deployment: readiness must GET /readyz")
    resources = container.get("resources", {})
    expect(
        {"cpu", "memory"} <= set(resources.get("requests", {}))
        and "memory" in resources.get("limits", {}),
        "Deployment: want cpu/memory requests and a memory limit",
    )
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    terms = anti.get("preferredDuringSchedulingIgnoredDuringExecution", []) + [
        {"podAffinityTerm": t}
        for t in anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
    ]
    expect(
        any(
            t["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
            and t["podAffinityTerm"]["labelSelector"]["matchLabels"].items() <= labels.items()
            for t in terms
        ),
        "Deployment: want pod anti-affinity across nodes on the pods' own labels",
    )
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    expect(security.get("runAsNonRoot") is True, "Deployment: want runAsNonRoot")
    expect(
        security.get("runAsUser", facts["uid"]) == facts["uid"],
        f"Deployment: runAsUser must be the image's USER {facts['uid']}",
    )
    expect(security.get("readOnlyRootFilesystem") is True, "Deployment: want a read-only root fs")
    expect(
        security.get("allowPrivilegeEscalation") is False,
        "Deployment: want no privilege escalation",
    )

    configmap, secret = docs["ConfigMap"], docs["Secret"]
    refs = {
        ("configMapRef" if "configMapRef" in e else "secretRef"): e.get("configMapRef")
        or e.get("secretRef")
        for e in container.get("envFrom", [])
    }
    expect(
        refs.get("configMapRef", {}).get("name") == configmap["metadata"]["name"],
        "Deployment: envFrom must take the ConfigMap",
    )
    expect(
        refs.get("secretRef", {}).get("name") == secret["metadata"]["name"],
        "Deployment: envFrom must take the dialects' Secret",
    )
    settings = settings_of(venv_python, dict(configmap["data"]))
    fields = {f"GATEWAY_{f.upper()}" for f in settings["fields"]}
    dialects = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
            "gateway.adapters"
        ]
    )

    def known(key: str) -> bool:
        return key in fields or any(key.startswith(f"GATEWAY_{d.upper()}_") for d in dialects)

    for key in configmap["data"]:
        expect(known(key), f"ConfigMap: {key} is not a gateway setting")
    values = {**secret.get("stringData", {}), **secret.get("data", {})}
    for key, value in values.items():
        expect(known(key), f"Secret: {key} is not a gateway setting")
        expect(
            "REPLACE-ME" in str(value), f"Secret example: {key} must be a REPLACE-ME placeholder"
        )

    pre_stop = container["lifecycle"]["preStop"]
    sleep = (pre_stop.get("sleep") or {}).get("seconds")
    if sleep is None:
        command = pre_stop["exec"]["command"]
        expect(command[0] == "sleep", "Deployment: preStop must sleep")
        sleep = seconds(command[1])
    grace = pod.get("terminationGracePeriodSeconds", 30)
    expect(
        grace > sleep + settings["shutdown_timeout_s"],
        f"Deployment: terminationGracePeriodSeconds {grace} must exceed the preStop sleep {sleep} "
        f"+ GATEWAY_SHUTDOWN_TIMEOUT_S {settings['shutdown_timeout_s']}",
    )
    volumes = {m["mountPath"] for m in container.get("volumeMounts", [])}
    expect("/tmp" in volumes, "Deployment: a read-only root fs wants a writable /tmp")

    service = docs["Service"]["spec"]
    expect(service["selector"].items() <= labels.items(), "Service: selector misses the pods")
    expect(service.get("sessionAffinity", "None") == "None", "Service: no session affinity wanted")
    expect(
        all(
            p["targetPort"] in ports or p["targetPort"] in ports.values() for p in service["ports"]
        ),
        "Service: targetPort is not the container's port",
    )
    hpa = docs["HorizontalPodAutoscaler"]
    expect(hpa["apiVersion"] == "autoscaling/v2", "HPA: want autoscaling/v2")
    expect(
        hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"],
        "HPA: targets another Deployment",
    )
    expect(hpa["spec"]["minReplicas"] >= 2, "HPA: minReplicas must keep 2 replicas")
    expect(
        any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"]["metrics"]),
        "HPA: want a CPU metric",
    )
    pdb = docs["PodDisruptionBudget"]["spec"]
    expect(
        pdb["selector"]["matchLabels"].items() <= labels.items(), "PDB: selector misses the pods"
    )


def load_yaml(path: Path, every: bool = False) -> Any:
    import yaml  # type: ignore[import-untyped]

    try:
        text = path.read_text()
        return list(yaml.safe_load_all(text)) if every else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        fail(f"{path.relative_to(ROOT)}: not valid YAML", str(exc))


def run(work: Path) -> None:

    facts = json.loads((work / "dockerfile.json").read_text())
    venv_python = work / IMAGE_VENV.lstrip("/") / "bin" / "python"
    compose = load_yaml(DEPLOY / "docker-compose.yml")
    gateways = check_compose(compose, facts, venv_python)
    heartbeat = settings_of(venv_python, {})["ws_heartbeat_s"]
    check_nginx(gateways, facts["expose"][0], heartbeat)
    check_k8s(work, facts, venv_python)
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
