// The gateway console: plain JS on the public API (GET /v1/dialects, POST …/decode) and, for
// the unified WebSocket, the TypeScript SDK's build (./sdk/, built from clients/typescript/):
// it reconnects, resumes every subscription with `since`, and settles commands by their ref.
// Safety rule: data is rendered with textContent and DOM properties, never innerHTML; links and
// images are only made from http(s) URLs.
import { connect } from "./sdk/index.js";

const $ = (id) => document.getElementById(id);

const state = {
token: sessionStorage.getItem("gateway-token") || "",
client: null,
dialects: new Map(), // name -> describe()
links: new Map(), // dialect -> last link event
conversations: new Map(), // id -> conversation
selected: null,
typing: false,
};

// -- helpers ------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "title") {
      node.setAttribute(key, String(value));
    } else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function safeUrl(raw) {
  if (typeof raw !== "string" || !raw) return null;
  try {
    const url = new URL(raw, location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function link(raw, label) {
  const href = safeUrl(raw);
  if (!href) return el("span", { text: label || raw || "" });
  return el("a", { href, target: "_blank", rel: "noopener noreferrer", text: label || raw });
}

function time(at) {
  if (typeof at !== "string") return "";
  const t = at.indexOf("T");
  return t >= 0 ? at.slice(t + 1, t + 9) : at;
}

function who(party) {
  if (!party) return "someone";
  return party.name || party.id || party.role || "someone";
}

function alertMsg(text) {
  const box = $("alert");
  box.textContent = text;
  box.hidden = !text;
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.token) h.Authorization = `Bearer ${state.token}`;
  return h;
}

// -- rendering canonical events -------------------------------------------------------------

function contentNode(content) {
  if (!content) return el("span", { text: "(no content)" });
  switch (content.kind) {
    case "text":
      return el("p", { class: "text", text: content.text });
    case "url":
      return el("p", { class: "text" }, label("link"), link(content.url, content.text || content.url));
    case "image": {
      const src = safeUrl(content.url);
      const caption = content.caption || content.file_name || "";
      const fig = el("figure", { class: "image" });
      if (src) fig.append(el("img", { src, alt: caption || "image", loading: "lazy" }));
      else fig.append(el("span", { text: `image (file id ${content.file_id || "?"})` }));
      if (caption) fig.append(el("figcaption", { text: caption }));
      return fig;
    }
    case "file": {
      const bits = [content.mime_type, content.size != null ? `${content.size} bytes` : null];
      const label = content.file_name || content.file_id || content.url || "file";
      return el(
        "p",
        { class: "file" },
        paperclip(),
        content.url ? link(content.url, label) : el("span", { text: `${label} (file id ${content.file_id})` }),
        bits.some(Boolean) ? ` (${bits.filter(Boolean).join(", ")})` : ""
      );
    }
    case "audio": {
      const src = safeUrl(content.url);
      const node = el("p", { class: "audio" }, label(content.voice ? "voice note" : "audio"));
      if (src) node.append(el("audio", { src, controls: true, preload: "none" }));
      return node;
    }
    case "location": {
      const where = [content.name, content.address].filter(Boolean).join(", ");
      const coords = `${content.latitude}, ${content.longitude}`;
      return el(
        "p",
        { class: "location" },
        label("location"),
        where ? `${where} ` : "",
        content.url ? link(content.url, `(${coords})`) : `(${coords})`
      );
    }
    case "action":
      return el("p", { class: "action", text: `action: ${content.action}${content.destination ? ` → ${content.destination}` : ""}` });
    default:
      return el("p", { text: `(${content.kind} content)` });
  }
}

// Plain text and one inline SVG: emoji glyphs are missing boxes in a browser without an
// emoji font (a plain Chromium).
function label(text) {
  return el("span", { class: "kind-label", text: `${text} ` });
}

function paperclip() {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  for (const [k, v] of Object.entries({ viewBox: "0 0 24 24", width: "14", height: "14", class: "icon", "aria-label": "file", role: "img" })) svg.setAttribute(k, v);
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5");
  for (const [k, v] of Object.entries({ fill: "none", stroke: "currentColor", "stroke-width": "1.8", "stroke-linecap": "round" })) path.setAttribute(k, v);
  svg.append(path);
  return svg;
}

// The user's own lines say "user": the name they started with is the platform's label.
function speaker(party) {
  return party && party.role === "user" ? "user" : who(party);
}

function describe(ev) {
  switch (ev.type) {
    case "message":
      return { who: speaker(ev.sender), role: ev.sender && ev.sender.role, body: contentNode(ev.content) };
    case "typing":
      return {
        who: speaker(ev.sender),
        role: ev.sender && ev.sender.role,
        body: el("p", { class: "muted", text: (ev.active ? "is typing…" : "stopped typing") + (ev.preview ? ` “${ev.preview}”` : "") }),
      };
    case "receipt":
      return {
        who: who(ev.sender),
        body: el("p", { class: "muted", text: `${ev.status}${ev.message_id ? ` ${ev.message_id}` : ""}${ev.up_to ? ` up to ${ev.up_to}` : ""}` }),
      };
    case "participant_joined":
      return { who: who(ev.participant), body: el("p", { class: "muted", text: `joined (${ev.participant.role})` }) };
    case "participant_left":
      return { who: who(ev.participant), body: el("p", { class: "muted", text: `left (${ev.participant.role})` }) };
    case "status":
      return {
        who: "status",
        body: el("p", { text: ev.status + (ev.wait_s != null ? ` · wait ≈ ${Math.round(ev.wait_s)} s` : "") }),
      };
    case "ended":
      return {
        who: "ended",
        body: el("p", { class: "strong", text: `Conversation ended: ${ev.reason}${ev.by ? ` (by ${ev.by})` : ""}${ev.text ? ` — ${ev.text}` : ""}` }),
      };
    case "link": {
      const bits = [ev.state];
      if (ev.attempt != null) bits.push(`attempt ${ev.attempt}${ev.max_attempts ? `/${ev.max_attempts}` : ""}`);
      if (ev.missed != null) bits.push(`${ev.missed} missed`);
      if (ev.will_retry === false) bits.push("gave up");
      if (ev.reason) bits.push(ev.reason);
      return { who: "link", body: el("p", { class: `link-${ev.state}`, text: bits.join(" · ") }) };
    }
    case "form":
      return {
        who: "form",
        body: el("p", { text: `form “${ev.name}” requested (${ev.request_id})${ev.timeout_s != null ? `, ${ev.timeout_s} s to answer` : ""}` }),
      };
    case "notice":
      return { who: ev.kind.replace(/_/g, " "), body: el("p", { text: ev.text }) };
    case "signal":
      return { who: ev.sender ? who(ev.sender) : "signal", body: el("p", { class: "muted", text: `signal ${JSON.stringify(ev.data)}` }) };
    case "availability":
      return {
        who: "availability",
        body: el("p", { text: (ev.online ? "online" : "offline") + (ev.wait_s != null ? ` · wait ≈ ${Math.round(ev.wait_s)} s` : "") }),
      };
    case "error":
      return { who: "error", body: el("p", { class: "error", text: `${ev.code}: ${ev.message}${ev.recoverable ? " (recoverable)" : ""}` }) };
    default:
      return { who: ev.type, body: el("p", { text: `(${ev.type})` }) };
  }
}

function renderEvent(ev) {
  const d = describe(ev);
  const li = el("li", {
    class: `event event-${ev.type}${d.role ? ` role-${d.role}` : ""}`,
    // A receipt is shown as a mark on the messages it acknowledges (markReceipts), not a row.
    hidden: ev.type === "receipt" && !!ev.seq,
    "data-seq": ev.seq,
    "data-id": ev.id,
    "data-type": ev.type,
  });
  li.append(
    // Events read from a platform or a decode have no seq: they are not in the log.
    el("span", { class: "meta" }, el("time", { dateTime: ev.at, text: time(ev.at) }), " ", el("span", { class: "seq", text: ev.seq ? `#${ev.seq}` : "" })),
    el("span", { class: "who", text: d.who }),
    el("div", { class: "body" }, d.body),
    el("pre", { class: "json", text: JSON.stringify(ev, null, 2) })
  );
  return li;
}

// -- conversations ------------------------------------------------------------------------

function conversation(id, dialect) {
  let conv = state.conversations.get(id);
  if (conv) return conv;
  conv = { id, dialect: dialect || id.split(":")[0], events: new Map(), cursor: 0, ended: false, status: "", last: "" };
  state.conversations.set(id, conv);
  follow(conv); // the whole log, then live
  renderConversationList();
  return conv;
}

function onEvent(ev) {
  if (!ev || !ev.conversation_id) return;
  if (ev.type === "link") {
    state.links.set(ev.dialect, ev);
    renderDialects();
  }
  const conv = conversation(ev.conversation_id, ev.dialect);
  if (ev.seq === 0) { // ephemeral (signal): shown, never stored
    if (state.selected === conv.id) $("log").append(renderEvent(ev));
    return;
  }
  if (conv.events.has(ev.seq)) return; // delivered by both `*` and the conversation: once
  conv.events.set(ev.seq, ev);
  while (conv.events.has(conv.cursor + 1)) conv.cursor += 1;
  if (ev.type === "ended") conv.ended = true;
  if (ev.type === "status") conv.status = ev.status;
  if (ev.type === "message" && ev.content) {
    conv.last = `${speaker(ev.sender)}: ${ev.content.text || ev.content.url || ev.content.file_name || ev.content.kind}`;
  }
  renderConversationList();
  if (state.selected === conv.id) {
    insertEvent($("log"), ev);
    if (ev.type === "receipt" || ev.type === "message") markReceipts($("log"), conv);
    if (ev.type === "ended") updateComposer();
  }
}

// Each message a receipt acknowledges (by id, or every one up to an id) gets its mark;
// `read` outranks `delivered`.
function markReceipts(list, conv) {
  const marks = new Map();
  const messages = [...conv.events.values()].filter((e) => e.type === "message").sort((a, b) => a.seq - b.seq);
  for (const seq of [...conv.events.keys()].sort((a, b) => a - b)) {
    const receipt = conv.events.get(seq);
    if (receipt.type !== "receipt") continue;
    let acknowledged = [];
    if (receipt.message_id) acknowledged = [receipt.message_id];
    else if (receipt.up_to) {
      const last = messages.findIndex((m) => m.id === receipt.up_to);
      if (last >= 0) acknowledged = messages.slice(0, last + 1).map((m) => m.id);
    }
    for (const id of acknowledged) if (marks.get(id) !== "read") marks.set(id, receipt.status);
  }
  for (const node of list.querySelectorAll(".event-message")) {
    const status = marks.get(node.dataset.id);
    let mark = node.querySelector(".receipt-mark");
    if (!status) { if (mark) mark.remove(); continue; }
    if (!mark) {
      mark = el("span", { class: "receipt-mark" });
      node.querySelector(".meta").append(mark);
    }
    mark.dataset.status = status;
    mark.textContent = ` ${status}`;
  }
}

function insertEvent(list, ev) {
  const node = renderEvent(ev);
  let before = null;
  for (const child of list.children) {
    if (Number(child.dataset.seq) > ev.seq) { before = child; break; }
  }
  list.insertBefore(node, before);
  if (!before) node.scrollIntoView({ block: "nearest" });
}

function renderConversationList() {
  const list = $("conversations");
  const items = [...state.conversations.values()].reverse();
  list.replaceChildren(
    ...items.map((conv) => {
      const button = el(
        "button",
        { type: "button", class: "conv-item", "data-conversation": conv.id, "aria-current": state.selected === conv.id ? "true" : null },
        el("span", { class: "conv-id", text: conv.id }),
        el("span", { class: `badge${conv.ended ? " ended" : ""}`, text: conv.ended ? "ended" : conv.status || "live" }),
        el("span", { class: "conv-last", text: conv.last })
      );
      button.addEventListener("click", () => select(conv.id));
      return el("li", {}, button);
    })
  );
  $("no-convs").hidden = items.length > 0;
}

function select(id) {
  state.selected = id;
  state.typing = false;
  const conv = state.conversations.get(id);
  $("conv-title").textContent = id;
  const caps = (state.dialects.get(conv.dialect) || {}).capabilities || [];
  $("conv-meta").textContent = `dialect ${conv.dialect} · can ${caps.filter((c) => c !== "ingest").join(", ") || "only ingest"}`;
  const log = $("log");
  log.replaceChildren(...[...conv.events.keys()].sort((a, b) => a - b).map((seq) => renderEvent(conv.events.get(seq))));
  markReceipts(log, conv);
  $("composer").hidden = false;
  state.historyCursor = null;
  $("history-log").replaceChildren();
  $("history-log").hidden = true;
  $("history-older").hidden = true;
  $("history-status").textContent = "";
  updateComposer();
  renderConversationList();
}

function can(dialect, need) {
  const d = state.dialects.get(dialect);
  if (!d) return false;
  const [cap, kind] = need.split(":");
  return d.capabilities.includes(cap) && (!kind || d.content_kinds.includes(kind));
}

function updateComposer() {
  const conv = state.conversations.get(state.selected);
  if (!conv) return;
  for (const button of $("composer").querySelectorAll("[data-needs]")) {
    const ok = can(conv.dialect, button.dataset.needs) && !conv.ended;
    button.disabled = !ok;
    button.title = ok ? "" : conv.ended ? "the conversation has ended" : `${conv.dialect} cannot do this`;
  }
  const typing = $("typing-button");
  typing.textContent = `Typing: ${state.typing ? "on" : "off"}`;
  typing.setAttribute("aria-pressed", String(state.typing));
}

// -- dialects -----------------------------------------------------------------------------

async function loadDialects() {
  try {
    const response = await fetch("/v1/dialects", { headers: headers() });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : response.statusText);
    state.dialects = new Map(body.dialects.map((d) => [d.name, d]));
    renderDialects();
    for (const select of [$("start-dialect"), $("decode-dialect")]) {
      const current = select.value;
      const names = [...state.dialects.keys()].filter((n) => select.id !== "start-dialect" || can(n, "start"));
      select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
      if (names.includes(current)) select.value = current;
    }
    if (state.selected) updateComposer();
  } catch (error) {
    alertMsg(`Could not load the dialects: ${error.message}`);
  }
}

function renderDialects() {
  $("dialects").replaceChildren(
    ...[...state.dialects.values()].map((d) => {
      const linkEv = state.links.get(d.name);
      const linkState = linkEv ? linkEv.state : "idle";
      return el(
        "li",
        { class: "dialect", "data-dialect": d.name },
        el("span", { class: "name", text: d.name }),
        el("span", { class: `badge link-${linkState}`, title: linkEv ? `${linkEv.conversation_id} at ${linkEv.at}` : "no link event yet", text: `link ${linkState}` }),
        el("span", { class: "caps", text: d.capabilities.join(" · ") }),
        d.content_kinds.length ? el("span", { class: "caps", text: `sends ${d.content_kinds.join(", ")}${d.typing_preview ? " · typing preview" : ""}` }) : null
      );
    })
  );
}

// -- the WebSocket (through the SDK) ------------------------------------------------------

const STATE_TEXT = { connecting: "Connecting…", resuming: "Reconnecting…", connected: "Connected" };

function setConn(change) {
  const node = $("conn");
  node.dataset.state = change.state;
  node.dataset.reconnects = String(change.reconnects);
  let text = STATE_TEXT[change.state] || "";
  if (change.state === "disconnected") {
    text = `Disconnected (code ${change.code}${change.reason ? `: ${change.reason}` : ""})`;
    text += change.willRetry ? ` · retrying in ${(change.retryInMs / 1000).toFixed(1)} s` : " · not retrying";
  } else if (change.state === "connected" && change.reconnects > 0) {
    const n = change.resumed || 0;
    text += ` · reconnected ${change.reconnects}× · resumed ${n} subscription${n === 1 ? "" : "s"} with since`;
  } else if (change.state === "connected" && state.client.welcome) {
    text += ` · ${state.client.welcome.dialects.length} dialects`;
  }
  if (change.attempt > 0 && change.state !== "connected") text += ` (attempt ${change.attempt + 1})`;
  node.textContent = text;
  if (change.state === "connected") alertMsg("");
}

function refused(what, error) {
  alertMsg(`${what} failed — ${error.code || "ERROR"}: ${error.message.replace(/^[A-Z_]+: /, "")}`);
}

// Every conversation the console knows has its own subscription from seq 0: its whole log,
// then live events, resumed by the SDK after a drop; `*` shows new conversations.
function follow(conv) {
  if (!state.client || conv.followed) return;
  conv.followed = true;
  state.client.subscribe(conv.id, onEvent, { since: 0 }).catch((error) => {
    conv.followed = false;
    refused(`subscribe ${conv.id}`, error);
  });
}

function connectClient() {
  if (state.client) state.client.close();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = connect({
    url: `${scheme}://${location.host}/v1/ws`,
    getToken: () => state.token, // in the bearer.<token> subprotocol, never in the URL
  });
  state.client = client;
  client.on("state", (change) => { if (state.client === client) setConn(change); });
  client.on("error", (error) => { if (state.client === client && error && error.code) refused("the connection", error); });
  client.on("gap", (gap) => {
    if (state.client === client) alertMsg(`${gap.conversation}: events ${gap.after + 1}–${gap.next - 1} are no longer in the gateway's log (retention)`);
  });
  client.subscribe("*", onEvent).catch((error) => refused("subscribe *", error));
  for (const conv of state.conversations.values()) {
    conv.followed = false;
    follow(conv);
  }
}

// -- forms --------------------------------------------------------------------------------

function onSubmit(id, handler) {
  $(id).addEventListener("submit", (event) => {
    event.preventDefault();
    handler(event.target);
  });
}

// A command is a promise: settled by the gateway's answer to its ref, re-sent with the same
// ref by the SDK if the socket drops before it (the gateway acts once per ref).
function command(what, promise) {
  alertMsg("");
  return promise.catch((error) => {
    refused(what, error);
    throw error;
  });
}

function sendContent(content, form) {
  if (!state.selected) return;
  command("send", state.client.send(state.selected, content)).catch(() => {});
  if (form) form.reset();
}

onSubmit("start-form", (form) => {
  const data = new FormData(form);
  const participant = { from: data.get("from") || "visitor", name: data.get("name") || undefined };
  const fields = { dialect: data.get("dialect"), participant };
  if (data.get("agent_id")) fields.agent_id = data.get("agent_id");
  if (data.get("subject")) fields.subject = data.get("subject");
  $("start-button").disabled = true;
  command("start", state.client.start(fields))
    .then((started) => {
      conversation(started.conversation);
      select(started.conversation);
    })
    .catch(() => {})
    .finally(() => { $("start-button").disabled = false; });
});

onSubmit("send-form", (form) => sendContent({ kind: "text", text: form.elements.text.value }, form));
onSubmit("link-form", (form) => {
  const content = { kind: "url", url: form.elements.url.value };
  if (form.elements.text.value) content.text = form.elements.text.value;
  sendContent(content, form);
});
onSubmit("image-form", (form) => sendContent({ kind: "image", url: form.elements.url.value }, form));
onSubmit("forward-form", (form) => {
  if (state.selected) command("forward", state.client.forward(state.selected, form.elements.destination.value)).catch(() => {});
  form.reset();
});
$("typing-button").addEventListener("click", () => {
  if (!state.selected) return;
  state.typing = !state.typing;
  command("typing", state.client.typing(state.selected, state.typing)).catch(() => {});
  updateComposer();
});
$("end-button").addEventListener("click", () => {
  if (state.selected) command("end", state.client.end(state.selected)).catch(() => {});
});
// The platform's own history (dialects with `history`): a page at a time, going back with
// its `next` cursor; pages are read, never added to the conversation's log.
function askHistory(cursor) {
  if (!state.selected) return;
  $("history-status").textContent = "Asking the platform…";
  const options = { limit: 20 };
  if (cursor) options.cursor = cursor;
  command("history", state.client.platformHistory(state.selected, options))
    .then(onPlatformHistory)
    .catch(() => { $("history-status").textContent = ""; });
}

function onPlatformHistory(frame) {
  if (frame.conversation !== state.selected) return;
  const list = $("history-log");
  const older = frame.events.map(renderEvent);
  if (state.historyCursor) list.prepend(...older);
  else list.replaceChildren(...older);
  list.hidden = false;
  state.historyCursor = frame.has_next ? frame.next : null;
  $("history-older").hidden = !frame.has_next;
  $("history-status").textContent = `${list.children.length} from the platform${frame.has_next ? "" : ", from the first"}`;
}

$("history-button").addEventListener("click", () => {
  state.historyCursor = null;
  askHistory(null);
});
$("history-older").addEventListener("click", () => askHistory(state.historyCursor));

$("show-json").addEventListener("change", (event) => {
  $("log").classList.toggle("show-json", event.target.checked);
});
onSubmit("token-form", (form) => {
  state.token = form.elements.token.value.trim();
  sessionStorage.setItem("gateway-token", state.token);
  loadDialects();
  connectClient();
});

onSubmit("decode-form", async (form) => {
  const data = new FormData(form);
  const out = $("decode-out");
  const status = $("decode-status");
  out.replaceChildren();
  status.textContent = "Decoding…";
  const conv = data.get("conversation");
  const url = `/v1/dialects/${encodeURIComponent(data.get("dialect"))}/decode${conv ? `?conversation=${encodeURIComponent(conv)}` : ""}`;
  try {
    const response = await fetch(url, { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: data.get("body") });
    const body = await response.json();
    if (!response.ok) {
      const e = body.error || {};
      const where = [e.index != null ? `frame ${e.index}` : "", e.path || ""].filter(Boolean).join(" at ");
      status.textContent = `${response.status} ${e.code}: ${e.message}${where ? ` (${where})` : ""}`;
      status.dataset.result = "error";
      return;
    }
    status.textContent = `${body.events.length} canonical event${body.events.length === 1 ? "" : "s"}${body.ignored ? `, ${body.ignored} ignored` : ""} (not published)`;
    status.dataset.result = "ok";
    out.replaceChildren(...body.events.map(renderEvent));
  } catch (error) {
    status.textContent = `Failed: ${error.message}`;
    status.dataset.result = "error";
  }
});

// -- start --------------------------------------------------------------------------------

$("token").value = state.token;
renderConversationList();
loadDialects();
connectClient();

// A hook for the browser tests (and the curious): drop the socket as a network failure would.
window.gatewayConsole = {
  state,
  // `pauseMs`: how long to wait before reconnecting (default: at once).
  dropSocket(pauseMs) {
    state.client.reconnect({ delayMs: typeof pauseMs === "number" ? pauseMs : 0 });
  },
};
