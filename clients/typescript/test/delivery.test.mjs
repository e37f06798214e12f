// The ordering rules on their own (no gateway needed): each event once, in seq order per
// conversation, whatever order and how often the socket carries them; and how a `subscribed`
// with `recovered: false` (a gateway that tracks log epochs) resets a subscription.
import assert from "node:assert/strict";
import { test } from "node:test";
import { connect, globMatcher } from "../dist/index.js";
import { Subscription } from "../dist/subscription.js";

const ev = (conversation, seq) => ({ type: "message", conversation_id: conversation, seq, id: `${conversation}/${seq}` });

function subscription(target) {
  const seen = [];
  const sub = new Subscription(target, () => {}, (error) => { throw error; });
  sub.add((event) => seen.push(`${event.conversation_id}#${event.seq}`));
  return { sub, seen };
}

test("an exact subscription: duplicates dropped, a gap held until it fills, nothing before `subscribed`", () => {
  const { sub, seen } = subscription("a:1");
  sub.offer(ev("a:1", 3)); // before `subscribed`: waits
  assert.deepEqual(seen, []);
  sub.start(1);
  assert.deepEqual(seen, []); // 3 is beyond 2: held
  sub.offer(ev("a:1", 2));
  assert.deepEqual(seen, ["a:1#2", "a:1#3"]);
  for (const seq of [2, 3, 1]) sub.offer(ev("a:1", seq)); // replayed copies
  sub.offer(ev("a:1", 5));
  sub.offer(ev("a:1", 4));
  sub.offer(ev("a:1", 4));
  assert.deepEqual(seen, ["a:1#2", "a:1#3", "a:1#4", "a:1#5"]);
  sub.offer({ ...ev("a:1", 0), type: "signal" }); // ephemeral: straight through
  assert.equal(seen.at(-1), "a:1#0");
  assert.deepEqual(sub.gaps(), []);
});

test("a pattern starts each conversation at its first sight and keeps them apart", () => {
  const { sub, seen } = subscription("a:*");
  sub.offer(ev("a:1", 7));
  sub.offer(ev("a:2", 1));
  sub.offer(ev("a:1", 9)); // 8 is missing: held (a resume's catch-up fills it)
  assert.deepEqual(sub.gaps(), ["a:1"]);
  sub.offer(ev("a:2", 2));
  sub.offer(ev("a:1", 8));
  assert.deepEqual(seen, ["a:1#7", "a:2#1", "a:2#2", "a:1#8", "a:1#9"]);
  assert.equal(sub.matches("b:1"), false);
});

test("globs follow the gateway's fnmatch", () => {
  assert.ok(globMatcher("genesys:*")("genesys:abc/1"));
  assert.ok(globMatcher("*")("x"));
  assert.ok(globMatcher("a:?")("a:1"));
  assert.ok(!globMatcher("a:?")("a:12"));
  assert.ok(globMatcher("a:[0-9]")("a:5"));
  assert.ok(!globMatcher("a:[!0-9]")("a:5"));
  assert.ok(globMatcher("a.b:*")("a.b:c") && !globMatcher("a.b:*")("axb:c"));
});

// A peer that speaks the protocol from a script: what the gateway of issue #23 will send.
class ScriptedSocket {
  static last;
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 1;
    this.sent = [];
    ScriptedSocket.last = this;
    queueMicrotask(() => this.push({ op: "welcome", version: 1, connection: "x", dialects: [], max_frame_bytes: 65536 }));
  }
  push(frame) { this.onmessage?.({ data: JSON.stringify(frame) }); }
  send(data) { this.sent.push(JSON.parse(data)); }
  close() { this.readyState = 3; }
}

test("`subscribed` with recovered: false resets the cursor and is reported", async () => {
  const client = connect({ url: "ws://scripted/v1/ws", WebSocket: ScriptedSocket, pingIntervalMs: 0 });
  const resets = [];
  client.on("reset", (reset) => resets.push(reset));
  const seen = [];
  const subscribing = client.subscribe("a:1", (event) => seen.push(event.seq), { since: 0 });
  await new Promise((resolve) => setTimeout(resolve, 10));
  const socket = ScriptedSocket.last;
  const subscribe = socket.sent.find((f) => f.op === "subscribe");
  assert.equal(subscribe.since, 0);
  socket.push({ op: "subscribed", ref: subscribe.ref, conversation: "a:1", seq: 0, epoch: "e1", future_field: true });
  await subscribing;
  for (const seq of [1, 2, 3]) socket.push({ op: "event", event: ev("a:1", seq) });
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(client.lastSeq("a:1"), 3);
  // The gateway lost the log (a new epoch): seqs start again after 0.
  client.reconnect();
  await new Promise((resolve) => setTimeout(resolve, 20));
  const again = ScriptedSocket.last.sent.find((f) => f.op === "subscribe");
  assert.equal(again.since, 3);
  ScriptedSocket.last.push({ op: "subscribed", ref: again.ref, conversation: "a:1", seq: 0, recovered: false, epoch: "e2" });
  ScriptedSocket.last.push({ op: "event", event: ev("a:1", 1) });
  assert.deepEqual(resets, [{ conversation: "a:1", seq: 0, epoch: "e2" }]);
  assert.deepEqual(seen, [1, 2, 3, 1]);
  client.close();
});
