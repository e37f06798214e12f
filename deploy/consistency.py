"""The deployment files against each other, the Dockerfile and the gateway's settings: what
the linters deploy/check.sh runs cannot know (compose: check-jsonschema and compose-lint; nginx:
gixy; Kubernetes: kubernetes-validate and checkov)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import crossplane  # type: ignore[import-untyped]
from checking import DEPLOY, ROOT, expect, fail, load_yaml, seconds, settings_of


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
    """Every key is a gateway setting, a dialect's option, or OpenTelemetry's (`OTEL_*`)."""
    settings, prefixes = known_settings(venv_python)
    for key in keys:
        expect(
            key in settings
            or key.startswith((*prefixes, "OTEL_"))
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
        r"^\s*#\s*((?:GATEWAY|OTEL)_\w+):\s*\"?([^\"\s]+)",
        (k8s / "configmap.yaml").read_text(),
        re.M,
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
