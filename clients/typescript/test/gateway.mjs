// Real gateways for the SDK's tests: `python -m gateway.cli serve` child processes on loopback.
//
// The pytest runner (tests/clients/test_typescript.py) sets GATEWAY_TEST_PYTHON (the venv's
// python) and, for the Redis engine, GATEWAY_TEST_REDIS_URL; without Redis the gateway runs on
// its memory engine and the tests that need two replicas skip.
import { spawn } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
export const PYTHON = process.env.GATEWAY_TEST_PYTHON || "python3";
export const REDIS_URL = process.env.GATEWAY_TEST_REDIS_URL || "";
export const SECRET = "sdk-test-secret-0123456789abcdef0123";

async function freePort() {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

export class Gateway {
  /** `env`: extra GATEWAY_* settings; `namespace`: the Redis namespace replicas share. */
  constructor({ env = {}, namespace } = {}) {
    this.env = env;
    this.namespace = namespace ?? `sdk${randomBytes(4).toString("hex")}`;
    this.log = [];
  }

  async start() {
    this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    this.wsUrl = `ws://127.0.0.1:${this.port}/v1/ws`;
    const env = {
      ...process.env,
      GATEWAY_HOST: "127.0.0.1",
      GATEWAY_PORT: String(this.port),
      GATEWAY_LOG_FORMAT: "json",
      GATEWAY_LOG_LEVEL: "warning",
      GATEWAY_DIALECTS: "loopback",
      GATEWAY_AUTH: "none",
      GATEWAY_REDIS_NAMESPACE: this.namespace,
      GATEWAY_SHUTDOWN_TIMEOUT_S: "2",
      ...(REDIS_URL ? { GATEWAY_REDIS_URL: REDIS_URL } : {}),
      ...this.env,
    };
    this.process = spawn(PYTHON, ["-m", "gateway.cli", "serve"], { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
    for (const stream of [this.process.stdout, this.process.stderr]) {
      stream.on("data", (chunk) => this.log.push(String(chunk)));
    }
    this.exited = once(this.process, "exit");
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (this.process.exitCode !== null) throw new Error(`gateway exited: ${this.log.join("")}`);
      try {
        const response = await fetch(`${this.url}/readyz`);
        if (response.ok) return this;
      } catch {
        // not listening yet
      }
      await sleep(50);
    }
    throw new Error(`gateway did not become ready: ${this.log.join("")}`);
  }

  /** SIGTERM: the gateway closes every socket with 1001 and drains. */
  async terminate() {
    if (this.process.exitCode !== null) return;
    this.process.kill("SIGTERM");
    await this.exited;
  }

  async stop() {
    if (this.process && this.process.exitCode === null) {
      this.process.kill("SIGKILL");
      await this.exited;
    }
  }

  /** Post loopback message frames `first..last` of `chat` (as the platform's webhook would). */
  async ingest(chat, first, last, text = (n) => `text ${n}`) {
    const frames = [];
    for (let n = first; n <= last; n++) {
      frames.push({ kind: "message", id: `m${n}`, chat, from: { role: "agent" }, text: text(n), ts: 1700000000 + n });
    }
    const response = await fetch(`${this.url}/v1/dialects/loopback/events`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...this.authHeaders() },
      body: JSON.stringify(frames),
    });
    if (response.status !== 202) throw new Error(`ingest: ${response.status} ${await response.text()}`);
    return response.json();
  }

  /** The conversation's stored log (every event, oldest first). */
  async conversationLog(conversation) {
    const response = await fetch(`${this.url}/v1/conversations/${encodeURIComponent(conversation)}/events?since=0&limit=1000`, {
      headers: this.authHeaders(),
    });
    return (await response.json()).events;
  }

  /** `gateway_ws_evictions_total` (sockets closed with 4008). */
  async evictions() {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    const line = text.split("\n").find((l) => l.startsWith("gateway_ws_evictions_total "));
    return line ? Number(line.split(" ")[1]) : 0;
  }

  authHeaders() {
    return this.env.GATEWAY_AUTH === "jwt" ? { Authorization: `Bearer ${token({ ingest: ["*"] })}` } : {};
  }
}

/** An HS256 JWT for the tests' secret, valid for `ttlS` seconds. */
export function token(claims = {}, ttlS = 600) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = { sub: "sdk-test", exp: Math.floor(Date.now() / 1000) + ttlS, read: ["*"], commands: ["*"], ...claims };
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(body)}`;
  return `${unsigned}.${createHmac("sha256", SECRET).update(unsigned).digest("base64url")}`;
}

/** `ws`'s WebSocket, remembering every socket it made (so a test can pause or abuse one). */
export function trackedWebSocket() {
  const sockets = [];
  class Tracked extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      sockets.push(this);
    }
  }
  return { Tracked, sockets };
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export async function waitFor(predicate, what, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export function chatName() {
  return `c${randomBytes(5).toString("hex")}`;
}

/** Seqs 1..n. */
export function upTo(n) {
  return Array.from({ length: n }, (_, i) => i + 1);
}
