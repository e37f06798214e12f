// Faults that drop the socket while events keep coming: the application still sees every
// event once, in seq order (a socket killed mid-stream, a slow reader evicted with 4008, a
// replica leaving with 1001 and the client moving to another).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { connect } from "../dist/index.js";
import { chatName, Gateway, REDIS_URL, sleep, trackedWebSocket, upTo, waitFor } from "./gateway.mjs";

let gateway;
before(async () => {
  gateway = await new Gateway({ env: { GATEWAY_WS_SEND_QUEUE: "32" } }).start();
});
after(async () => {
  await gateway?.stop();
});

test("a socket killed mid-stream resumes with since: nothing missed, nothing twice", async () => {
  const chat = chatName();
  const conversation = `loopback:${chat}`;
  const states = [];
  const client = connect({ url: gateway.wsUrl, WebSocket: trackedWebSocket().Tracked, backoffMs: { initial: 100 } });
  client.on("state", (change) => states.push(change.state));
  try {
    const exact = [];
    const pattern = [];
    await client.subscribe(conversation, (event) => exact.push(event.seq), { since: 0 });
    await client.subscribe("loopback:*", (event) => {
      if (event.conversation_id === conversation) pattern.push(event.seq);
    });
    await gateway.ingest(chat, 1, 20);
    await waitFor(() => exact.length >= 20 && pattern.length >= 20, "the first 20 events");
    // Kill the socket and keep ingesting while the client is away.
    client.reconnect({ delayMs: 400 });
    const away = gateway.ingest(chat, 21, 60);
    await away;
    await waitFor(() => client.state === "connected", "the reconnect");
    await gateway.ingest(chat, 61, 80);
    await waitFor(() => exact.length >= 80 && pattern.length >= 80, "all 80 events");
    await sleep(200); // anything late would be a duplicate
    assert.deepEqual(exact, upTo(80));
    assert.deepEqual(pattern, upTo(80)); // the pattern caught up through the log
    assert.equal(client.lastSeq(conversation), 80);
    assert.ok(states.includes("resuming"), `states: ${states}`);
  } finally {
    client.close();
  }
});

test("a slow reader evicted with 4008 resumes where it stopped", async () => {
  const chat = chatName();
  const conversation = `loopback:${chat}`;
  const { Tracked, sockets } = trackedWebSocket();
  const closes = [];
  const client = connect({ url: gateway.wsUrl, WebSocket: Tracked, backoffMs: { initial: 100 } });
  client.on("state", (change) => change.state === "disconnected" && closes.push(change.code));
  try {
    const seen = [];
    await client.subscribe(conversation, (event) => seen.push(event.seq), { since: 0 });
    // Stop reading (the kernel's buffers fill, then the gateway's queue), and ingest until the
    // gateway gives up on this socket.
    const evictions = await gateway.evictions();
    sockets[0]._socket.pause();
    const big = "x".repeat(8000);
    let sent = 0;
    while ((await gateway.evictions()) === evictions) {
      assert.ok(sent < 8000, "the paused reader was never evicted");
      await gateway.ingest(chat, sent + 1, sent + 20, () => big);
      sent += 20;
    }
    sockets[0]._socket.resume(); // it reads what was sent, then the 4008 close
    await waitFor(() => closes.includes(4008), "the 4008 close");
    await waitFor(() => seen.length >= sent, `all ${sent} events`, 60_000);
    assert.deepEqual(seen, upTo(sent));
    assert.ok(sockets.length >= 2, "the client reconnected");
  } finally {
    client.close();
  }
});

test("a replica leaving (SIGTERM, 1001): the client moves to another and resumes", { skip: !REDIS_URL && "needs Redis (two replicas)" }, async () => {
  const a = await new Gateway().start();
  const b = await new Gateway({ namespace: a.namespace }).start();
  const chat = chatName();
  const conversation = `loopback:${chat}`;
  const codes = [];
  const client = connect({ url: [a.wsUrl, b.wsUrl], WebSocket: trackedWebSocket().Tracked, backoffMs: { initial: 100 } });
  client.on("state", (change) => change.state === "disconnected" && codes.push(change.code));
  try {
    const seen = [];
    await client.subscribe(conversation, (event) => seen.push(event.seq), { since: 0 });
    await b.ingest(chat, 1, 30);
    await waitFor(() => seen.length >= 30, "30 events through replica A");
    const leaving = a.terminate();
    await b.ingest(chat, 31, 60);
    await leaving;
    await b.ingest(chat, 61, 90);
    await waitFor(() => seen.length >= 90, "90 events", 30_000);
    await sleep(200);
    assert.deepEqual(seen, upTo(90));
    assert.equal(codes[0], 1001);
    assert.equal(client.state, "connected");
  } finally {
    client.close();
    await a.stop();
    await b.stop();
  }
});

test("events trimmed from the log before delivery: a gap is reported, never waited for", async () => {
  const small = await new Gateway({ env: { GATEWAY_RETENTION_MAXLEN: "50" } }).start();
  const chat = chatName();
  const conversation = `loopback:${chat}`;
  const client = connect({ url: small.wsUrl, WebSocket: trackedWebSocket().Tracked, backoffMs: { initial: 50 } });
  const gaps = [];
  client.on("gap", (gap) => gaps.push(gap));
  try {
    await small.ingest(chat, 1, 120); // the log keeps about the last 50
    const seen = [];
    const watched = [];
    await client.subscribe(conversation, (event) => seen.push(event.seq), { since: 0 });
    await client.subscribe("loopback:*", (event) => watched.push(event.seq));
    await waitFor(() => seen.at(-1) === 120, "the log's newest event");
    const first = seen[0];
    assert.ok(first > 1, `nothing was trimmed: ${first}`);
    assert.deepEqual(seen, Array.from({ length: 121 - first }, (_, i) => first + i));
    assert.deepEqual(gaps, [{ conversation, after: 0, next: first }]);
    // A pattern (no exact subscription) that resumes past a trimmed stretch goes on too.
    const other = chatName();
    const patterned = [];
    const unwatch = await client.subscribe("loopback:*", (event) => {
      if (event.conversation_id === `loopback:${other}`) patterned.push(event.seq);
    });
    await small.ingest(other, 1, 5);
    await waitFor(() => patterned.length === 5, "the pattern's first five");
    client.reconnect({ delayMs: 500 });
    await small.ingest(other, 6, 200); // while away: the log keeps only the last 50
    await waitFor(() => client.state === "connected", "the reconnect");
    await small.ingest(other, 201, 205);
    await waitFor(() => patterned.at(-1) === 205, "205 through the pattern");
    const resumedAt = patterned[5];
    assert.ok(resumedAt > 6, `nothing was trimmed: ${resumedAt}`);
    assert.deepEqual(patterned, [...upTo(5), ...Array.from({ length: 206 - resumedAt }, (_, i) => resumedAt + i)]);
    assert.deepEqual(gaps.at(-1), { conversation: `loopback:${other}`, after: 5, next: resumedAt });
    await unwatch.unsubscribe();
  } finally {
    client.close();
    await small.stop();
  }
});
