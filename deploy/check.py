"""The checks no linter does, behind deploy/check.sh (which runs the linters first: hadolint,
check-jsonschema with the compose-spec schema, compose-lint, kubernetes-validate, checkov, gixy).

    python deploy/check.py build WORK   the builder stage: its COPY lines (less .dockerignore,
                                        Docker's own matcher) into WORK/ctx, then its RUN,
                                        making WORK/opt/venv
    python deploy/check.py run WORK     the files against each other and the gateway's settings,
                                        then the runtime stage from WORK/opt/venv

What is left here is the project's own contract: the Dockerfile's steps run without Docker, the
compose file, nginx.conf and the manifests agreeing with the Dockerfile, with each other and with
the gateway's settings loader, and the built venv's runtime behaviour (probes, healthchecks,
SIGTERM drain, JSON logs). Run by the `deploy` group's python (uv.lock): dockerfile-parse,
docker's .dockerignore matcher, PyYAML and crossplane (nginx's parser). Prints nothing on
success; on failure, what failed (and the relevant log) on stderr, and exits 1.
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

import crossplane  # type: ignore[import-untyped]
import yaml  # type: ignore[import-untyped]
from docker.utils.build import exclude_paths  # type: ignore[import-untyped]
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
IMAGE_VENV = "/opt/venv"
BASE_IMAGE = "python:3.11-slim"
"""The image of both stages: the builder's venv runs on the runtime's (the wheel is pure
Python: no compiler needed)."""


class CheckFailed(Exception):
    pass


def fail(message: str, log: str | None = None) -> NoReturn:
    if log:
        message += "\n" + textwrap.indent(log.rstrip(), "  | ")
    raise CheckFailed(message)


def expect(ok: object, message: str) -> None:
    if not ok:
        fail(message)


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


# ── compose and nginx (schema: check-jsonschema; security: compose-lint; nginx: gixy) ─────


def compose_gateway_image(compose: dict[str, Any]) -> str | None:
    for service in compose["services"].values():
        if "build" in service:
            return str(service.get("image"))
    return None


def known_settings(venv_python: Path) -> tuple[set[str], set[str]]:
    """The gateway's `GATEWAY_*` setting variables, and its dialects' variable prefixes."""
    fields = settings_of(venv_python, {})["fields"]
    dialects = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
        "gateway.adapters"
    ]
    return {f"GATEWAY_{f.upper()}" for f in fields}, {f"GATEWAY_{d.upper()}_" for d in dialects}


def check_known(keys: Any, where: str, venv_python: Path) -> None:
    settings, prefixes = known_settings(venv_python)
    for key in keys:
        expect(
            key in settings
            or key.startswith(tuple(prefixes))
            or key.removesuffix("_FILE") in settings,
            f"{where}: {key} is not a gateway setting",
        )


def check_compose(compose: dict[str, Any], facts: dict[str, Any], venv_python: Path) -> list[str]:
    services = compose["services"]
    where = "deploy/docker-compose.yml"
    gateways = [n for n, s in services.items() if "build" in s]
    expect(len(gateways) >= 2, f"{where}: want two gateway replicas built from the Dockerfile")
    redis = services.get("redis", {})
    expect("--appendonly" in (redis.get("command") or []), f"{where}: redis must use AOF")
    for name, service in services.items():
        expect((service.get("healthcheck") or {}).get("test"), f"{where}: {name}: no healthcheck")
    for name in gateways:
        service = services[name]
        expect(
            (DEPLOY / service["build"]["context"]).resolve() == ROOT
            and service["build"].get("dockerfile", "Dockerfile") == "Dockerfile",
            f"{where}: {name}: build must use the project's Dockerfile",
        )
        environment = service.get("environment") or {}
        check_known(environment, f"{where}: {name}", venv_python)
        # Values the operator supplies at `up` (`${VAR:?…}`) are not known here: the rest must
        # pass the gateway's own settings loader.
        literal = {k: str(v) for k, v in environment.items() if "${" not in str(v)}
        settings = settings_of(venv_python, literal)
        expect(settings["redis_url"] == "redis://redis:6379/0", f"{where}: {name}: redis_url")
        expect(settings["port"] in facts["expose"], f"{where}: {name}: port is not EXPOSE'd")
        expect(
            (service.get("depends_on") or {}).get("redis", {}).get("condition")
            == "service_healthy",
            f"{where}: {name}: must depend on redis being healthy",
        )
        expect(
            seconds(service.get("stop_grace_period", "10s")) > settings["shutdown_timeout_s"],
            f"{where}: {name}: stop_grace_period must exceed GATEWAY_SHUTDOWN_TIMEOUT_S",
        )
    (lb,) = [n for n in services if n not in gateways and n != "redis"]
    for name in gateways:
        expect(
            (services[lb].get("depends_on") or {}).get(name, {}).get("condition")
            == "service_healthy",
            f"{where}: {lb}: must depend on {name} being healthy",
        )
    mounts = [str(v).split(":") for v in services[lb].get("volumes") or []]
    expect(
        any((DEPLOY / m[0]).resolve() == DEPLOY / "nginx.conf" for m in mounts),
        f"{where}: {lb}: must mount deploy/nginx.conf",
    )
    return gateways


def check_nginx(gateways: list[str], port: int, heartbeat: float) -> None:
    """nginx.conf (parsed by crossplane) proxies to exactly the compose replicas, passes
    WebSocket upgrades, and keeps idle sockets longer than the gateway's heartbeat."""
    where = "deploy/nginx.conf"
    parsed = crossplane.parse(str(DEPLOY / "nginx.conf"), comments=False, single=True)
    if parsed["status"] != "ok":
        fail(f"{where}: crossplane cannot parse it", json.dumps(parsed["errors"]))

    def blocks(directives: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
        found = []
        for directive in directives:
            if directive["directive"] == name:
                found.append(directive)
            found += blocks(directive.get("block", []), name)
        return found

    top = parsed["config"][0]["parsed"]
    (upstream,) = blocks(top, "upstream")
    servers = [d["args"][0] for d in upstream["block"] if d["directive"] == "server"]
    expect(
        sorted(servers) == sorted(f"{g}:{port}" for g in gateways),
        f"{where}: upstream servers {servers} are not the compose replicas on :{port}",
    )
    expect(
        not {d["directive"] for d in upstream["block"]} & {"ip_hash", "hash", "sticky"},
        f"{where}: no sticky sessions wanted",
    )
    headers = {tuple(d["args"]) for d in blocks(top, "proxy_set_header")}
    expect(
        {("Upgrade", "$http_upgrade"), ("Connection", "$connection_upgrade")} <= headers
        and [d["args"] for d in blocks(top, "proxy_http_version")] == [["1.1"]],
        f"{where}: WebSocket upgrades are not passed through",
    )
    locations = {tuple(d["args"]): d["block"] for d in blocks(top, "location")}
    expect(("=", "/v1/ws") in locations, f"{where}: no `location = /v1/ws`")
    for args, body in locations.items():
        passes = [d["args"] for d in body if d["directive"] == "proxy_pass"]
        expect(passes == [[f"http://{upstream['args'][0]}"]], f"{where}: {args}: proxy_pass")
    timeout = [
        d["args"][0] for d in locations[("=", "/v1/ws")] if d["directive"] == "proxy_read_timeout"
    ]
    expect(
        timeout and seconds(timeout[0]) >= 10 * heartbeat,
        f"{where}: /v1/ws needs a long proxy_read_timeout (≥ 10 heartbeats of {heartbeat:.0f} s)",
    )


# ── Kubernetes (schemas: kubernetes-validate --strict; policy: checkov) ─────────────────────


def check_k8s(facts: dict[str, Any], venv_python: Path) -> None:
    """The manifests agree with the image, with each other and with the gateway's settings."""
    k8s = DEPLOY / "k8s"
    files = sorted(p for p in k8s.glob("*.yaml") if p.name != "kustomization.yaml")
    expect(
        sorted(load_yaml(k8s / "kustomization.yaml")["resources"])
        == sorted(p.name for p in files if "example" not in p.name),
        "deploy/k8s/kustomization.yaml must list every manifest but the examples",
    )
    docs = {doc["kind"]: doc for path in files for doc in load_yaml(path, every=True) if doc}
    wanted = {
        "Namespace", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "ConfigMap", "Secret", "NetworkPolicy",
    }  # fmt: skip
    expect(wanted <= docs.keys(), f"deploy/k8s: missing {sorted(wanted - docs.keys())}")
    namespace = docs["Namespace"]["metadata"]["name"]
    for kind, doc in docs.items():
        if kind != "Namespace":
            expect(doc["metadata"].get("namespace") == namespace, f"{kind}: not in {namespace}")
    deployment = docs["Deployment"]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"]["labels"]
    expect(spec["selector"]["matchLabels"].items() <= labels.items(), "Deployment: selector")
    (container,) = pod["containers"]
    expect(
        "command" not in container and "args" not in container,
        "Deployment: run the image's CMD (no command/args)",
    )
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    expect(list(ports.values()) == facts["expose"], "Deployment: containerPort != EXPOSE")

    def is_port(port: str | int) -> bool:
        return port in ports or port in ports.values()

    for probe, path in (
        ("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")
    ):  # fmt: skip
        get = container[probe]["httpGet"]
        expect(get["path"] == path and is_port(get["port"]), f"Deployment: {probe} must GET {path}")
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    expect(
        security.get("runAsUser", facts["uid"]) == facts["uid"],
        f"Deployment: runAsUser must be the image's USER {facts['uid']}",
    )
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    expect("/tmp" in mounts.values(), "Deployment: a read-only root fs wants a writable /tmp")
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    terms = [
        t["podAffinityTerm"]
        for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    ]
    expect(
        any(
            t["topologyKey"] == "kubernetes.io/hostname"
            and t["labelSelector"]["matchLabels"].items() <= labels.items()
            for t in terms + anti.get("requiredDuringSchedulingIgnoredDuringExecution", [])
        ),
        "Deployment: want pod anti-affinity across nodes on the pods' own labels",
    )

    # Settings: the ConfigMap's keys are the gateway's and pass its loader; secrets are files
    # of the Secret's volume, and every file the ConfigMap names is a key of the Secret.
    configmap, secret = docs["ConfigMap"], docs["Secret"]
    expect(
        [e["configMapRef"]["name"] for e in container.get("envFrom", [])]
        == [configmap["metadata"]["name"]],
        "Deployment: envFrom must take the ConfigMap (and only it: secrets are files)",
    )
    data = configmap["data"]
    check_known(data, "ConfigMap", venv_python)
    settings = settings_of(venv_python, dict(data))
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    (secret_volume,) = [n for n, v in volumes.items() if "secret" in v]
    expect(
        volumes[secret_volume]["secret"]["secretName"] == secret["metadata"]["name"],
        "Deployment: the secret volume must mount the dialects' Secret",
    )
    secret_dir = mounts[secret_volume]
    keys = {**secret.get("stringData", {}), **secret.get("data", {})}
    for key, value in keys.items():
        expect(
            "REPLACE-ME" in str(value), f"Secret example: {key} must be a REPLACE-ME placeholder"
        )
    commented = re.findall(
        r"^\s*#\s*(GATEWAY_\w+):\s*\"?([^\"\s]+)", (k8s / "configmap.yaml").read_text(), re.M
    )
    for key, value in [*data.items(), *commented]:
        if key.endswith("_FILE") and str(value).startswith(secret_dir + "/"):
            expect(
                str(value).removeprefix(secret_dir + "/") in keys,
                f"ConfigMap: {key} names {value}, which the example Secret has no key for",
            )
    check_known([k for k, _ in commented], "ConfigMap (commented)", venv_python)
    expect("GATEWAY_JWT_SECRET_FILE" in data, "ConfigMap: the token key must come from the Secret")

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

    service = docs["Service"]["spec"]
    expect(service["selector"].items() <= labels.items(), "Service: selector misses the pods")
    expect(service.get("sessionAffinity", "None") == "None", "Service: no session affinity wanted")
    expect(all(is_port(p["targetPort"]) for p in service["ports"]), "Service: targetPort")
    hpa = docs["HorizontalPodAutoscaler"]["spec"]
    expect(hpa["scaleTargetRef"]["name"] == deployment["metadata"]["name"], "HPA: target")
    expect(hpa["minReplicas"] >= 2, "HPA: minReplicas must keep 2 replicas")
    pdb = docs["PodDisruptionBudget"]["spec"]
    expect(pdb["selector"]["matchLabels"].items() <= labels.items(), "PDB: selector misses pods")
    policy = docs["NetworkPolicy"]["spec"]
    expect(policy["podSelector"]["matchLabels"].items() <= labels.items(), "NetworkPolicy: pods")
    expect(
        all(is_port(p["port"]) for rule in policy["ingress"] for p in rule["ports"]),
        "NetworkPolicy: admits a port the container does not serve",
    )


def load_yaml(path: Path, every: bool = False) -> Any:
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
