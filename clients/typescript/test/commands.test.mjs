// Commands as promises across faults, typed errors, token expiry (4401) and 1009.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { connect, GatewayError } from "../dist/index.js";
import { chatName, Gateway, sleep, token, trackedWebSocket, upTo, waitFor } from "./gateway.mjs";

let gateway;
before(async () => {
  // The demo runs the loopback platform's emulator in the gateway: a scripted agent answers
  // each text with `echo: <text>`.
  gateway = await new Gateway({ env: { GATEWAY_DEMO: "true", GATEWAY_WS_MAX_FRAME_BYTES: "4096" } }).start();
});
after(async () => {
  await gateway?.stop();
});

function messages(events, text) {
  return events.filter((e) => e.type === "message" && e.content.kind === "text" && e.content.text === text);
}

test("a send in flight across a drop is acknowledged once and reaches the platform once", async () => {
  const client = connect({ url: gateway.url, WebSocket: trackedWebSocket().Tracked, backoffMs: { initial: 50 } });
  try {
    const started = await client.start({ dialect: "loopback", participant: { from: "ana", name: "Ana" } });
    assert.equal(started.op, "started");
    const conversation = started.conversation;
    const events = [];
    await client.subscribe(conversation, (event) => events.push(event), { since: 0 });
    for (let round = 0; round < 3; round++) {
      const text = `in flight ${round}`;
      let settled = 0;
      const sending = client.send(conversation, { kind: "text", text }).finally(() => (settled += 1));
      client.reconnect({ delayMs: 100 * round }); // before the ack: the frame may or may not have left
      const ack = await sending;
      assert.equal(ack.op, "ack");
      assert.equal(ack.conversation, conversation);
      await waitFor(() => messages(events, `echo: ${text}`).length > 0, `the echo of ${text}`);
      await sleep(300);
      assert.equal(settled, 1);
      assert.equal(messages(events, text).length, 1, `${text} reached the platform more than once`);
      assert.equal(messages(events, `echo: ${text}`).length, 1);
    }
    const log = await gateway.conversationLog(conversation);
    assert.deepEqual(events.map((e) => e.seq), upTo(log.length)); // once each, in order
    assert.deepEqual(events.map((e) => e.id), log.map((e) => e.id));
  } finally {
    client.close();
  }
});

test("an unknown op and a bad command are rejected with typed errors", async () => {
  const client = connect({ url: gateway.url, WebSocket: trackedWebSocket().Tracked });
  try {
    await assert.rejects(client.call("teleport", { conversation: "loopback:x" }), (error) => {
      assert.ok(error instanceof GatewayError);
      assert.equal(error.code, "INVALID_REQUEST");
      assert.equal(error.recoverable, false);
      assert.match(error.message, /teleport/);
      return true;
    });
    await assert.rejects(client.send("loopback:nobody-started-this", { kind: "text", text: "hi" }), (error) => {
      assert.ok(error instanceof GatewayError);
      assert.equal(error.code, "SESSION_NOT_FOUND");
      return true;
    });
    await assert.rejects(client.send("loopback:x", { kind: "text" }), (error) => {
      assert.ok(error instanceof GatewayError);
      assert.equal(error.code, "INVALID_REQUEST");
      assert.equal(error.details.path, "$.content");
      return true;
    });
    await assert.rejects(client.history("loopback:*"), { code: "INVALID_REQUEST" }); // one conversation
    assert.equal(client.state, "connected"); // refusals never cost the connection
  } finally {
    client.close();
  }
});

test("a frame over the gateway's limit is refused before it is sent; a 1009 is surfaced, not retried", async () => {
  const { Tracked, sockets } = trackedWebSocket();
  const client = connect({ url: gateway.url, WebSocket: Tracked, backoffMs: { initial: 50 } });
  const errors = [];
  const states = [];
  client.on("error", (error) => errors.push(error));
  client.on("state", (change) => states.push(change));
  try {
    const started = await client.start({ dialect: "loopback", participant: { from: "bo" } });
    await assert.rejects(client.send(started.conversation, { kind: "text", text: "y".repeat(5000) }), {
      code: "FRAME_TOO_LARGE",
    });
    assert.equal(client.state, "connected");
    // A frame the client did not check (another library on the same socket) draws 1009.
    sockets[0].send(JSON.stringify({ op: "ping", ref: "z".repeat(5000) }));
    await waitFor(() => client.state === "disconnected", "the 1009 close");
    await sleep(300);
    assert.equal(sockets.length, 1, "the client must not reconnect by itself after 1009");
    const last = states.at(-1);
    assert.equal(last.code, 1009);
    assert.equal(last.willRetry, false);
    assert.equal(errors.at(-1).code, "FRAME_TOO_LARGE");
    await assert.rejects(client.recover(started.conversation), { code: "FRAME_TOO_LARGE" });
    client.reconnect(); // the application decides
    await waitFor(() => client.state === "connected", "the reconnect");
    const recovered = await client.recover(started.conversation);
    assert.equal(recovered.op, "recovered");
  } finally {
    client.close();
  }
});

test("4401: a fresh token from getToken, in the subprotocol, and the stream resumes", async () => {
  const secured = await new Gateway({
    env: { GATEWAY_AUTH: "jwt", GATEWAY_JWT_SECRET: "sdk-test-secret-0123456789abcdef0123" },
  }).start();
  const { Tracked, sockets } = trackedWebSocket();
  const reasons = [];
  const client = connect({
    url: secured.wsUrl,
    WebSocket: Tracked,
    backoffMs: { initial: 50 },
    getToken: ({ reason }) => {
      reasons.push(reason);
      return token({}, reasons.length === 1 ? 2 : 600); // the first expires at once
    },
  });
  const codes = [];
  client.on("state", (change) => change.state === "disconnected" && codes.push(change.code));
  try {
    const chat = chatName();
    const seen = [];
    await client.subscribe(`loopback:${chat}`, (event) => seen.push(event.seq), { since: 0 });
    await secured.ingest(chat, 1, 10);
    await waitFor(() => codes.includes(4401), "the 4401 close", 10_000);
    await secured.ingest(chat, 11, 20);
    await waitFor(() => seen.length >= 20 && client.state === "connected", "20 events");
    await sleep(200);
    assert.deepEqual(seen, upTo(20));
    assert.deepEqual(reasons, ["connect", "expired"]);
    for (const socket of sockets) {
      assert.ok(!socket.url.includes("token"), `the token is in the URL: ${socket.url}`);
      assert.equal(socket.protocol, "gateway.v1");
    }
  } finally {
    client.close();
    await secured.stop();
  }
});
