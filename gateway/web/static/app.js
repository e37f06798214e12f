// The gateway console: plain JS on the public API (GET /v1/dialects, POST …/decode, /v1/ws).
// Safety rule: data is rendered with textContent and DOM properties, never innerHTML; links and
// images are only made from http(s) URLs.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem("gateway-token") || "",
    ws: null,
    open: false,
    attempt: 0, // failed connects in a row
    reconnects: 0, // successful connects after the first
    lastResumed: 0,
    timer: null,
    dialects: new Map(), // name -> describe()
    links: new Map(), // dialect -> last link event
    conversations: new Map(), // id -> conversation
    selected: null,
    refs: 0,
    pending: new Map(), // ref -> {op, conversation?}
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

  function nextRef(op) {
    state.refs += 1;
    return `console-${Date.now().toString(36)}-${state.refs}-${op}`;
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
        return el("p", { class: "text" }, "🔗 ", link(content.url, content.text || content.url));
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
          "📎 ",
          content.url ? link(content.url, label) : el("span", { text: `${label} (file id ${content.file_id})` }),
          bits.some(Boolean) ? ` (${bits.filter(Boolean).join(", ")})` : ""
        );
      }
      case "audio": {
        const src = safeUrl(content.url);
        const node = el("p", { class: "audio" }, content.voice ? "🎤 voice note " : "🔊 audio ");
        if (src) node.append(el("audio", { src, controls: true, preload: "none" }));
        return node;
      }
      case "location": {
        const where = [content.name, content.address].filter(Boolean).join(", ");
        const coords = `${content.latitude}, ${content.longitude}`;
        return el(
          "p",
          { class: "location" },
          "📍 ",
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

  function describe(ev) {
    switch (ev.type) {
      case "message":
        return { who: who(ev.sender), role: ev.sender && ev.sender.role, body: contentNode(ev.content) };
      case "typing":
        return {
          who: who(ev.sender),
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
    if (state.open) subscribe(id, 0); // the whole log, then live
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
      conv.last = `${who(ev.sender)}: ${ev.content.text || ev.content.url || ev.content.file_name || ev.content.kind}`;
    }
    renderConversationList();
    if (state.selected === conv.id) {
      insertEvent($("log"), ev);
      if (ev.type === "ended") updateComposer();
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

  // -- the WebSocket ------------------------------------------------------------------------

  function setConn(kind, text) {
    const node = $("conn");
    node.dataset.state = kind;
    node.dataset.reconnects = String(state.reconnects);
    node.textContent = text;
  }

  function send(frame) {
    if (!state.open) {
      alertMsg("Not connected: the command was not sent (it is safe to retry once reconnected).");
      return false;
    }
    state.ws.send(JSON.stringify(frame));
    return true;
  }

  function subscribe(id, since) {
    const frame = { op: "subscribe", conversation: id };
    if (since !== undefined && since !== null) frame.since = since;
    send(frame);
  }

  function command(op, fields) {
    const ref = nextRef(op);
    state.pending.set(ref, { op, conversation: fields.conversation });
    if (!send(Object.assign({ op, ref }, fields))) state.pending.delete(ref);
    return ref;
  }

  function connect() {
    clearTimeout(state.timer);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = state.token ? `?token=${encodeURIComponent(state.token)}` : "";
    setConn("connecting", state.reconnects || state.attempt ? `Reconnecting… (attempt ${state.attempt + 1})` : "Connecting…");
    const ws = new WebSocket(`${scheme}://${location.host}/v1/ws${query}`);
    state.ws = ws;
    let welcomed = false;
    ws.onmessage = (message) => {
      let frame;
      try { frame = JSON.parse(message.data); } catch { return; }
      if (frame.op === "welcome") {
        welcomed = true;
        onWelcome(frame);
      } else handleFrame(frame);
    };
    ws.onclose = (close) => {
      if (state.ws !== ws) return;
      state.open = false;
      if (welcomed) state.attempt = 0;
      state.attempt += 1;
      let delay = Math.min(500 * 2 ** (state.attempt - 1), 10000);
      if (state.holdMs != null) {
        delay = state.holdMs;
        state.holdMs = null;
      }
      setConn("closed", `Disconnected (code ${close.code}${close.reason ? `: ${close.reason}` : ""}) · retrying in ${(delay / 1000).toFixed(1)} s`);
      state.timer = setTimeout(connect, delay);
    };
  }

  function onWelcome(frame) {
    const first = !state.everOpen;
    state.everOpen = true;
    state.open = true;
    if (!first) state.reconnects += 1;
    state.attempt = 0;
    subscribe("*"); // live: the list of conversations and their events
    let resumed = 0;
    for (const conv of state.conversations.values()) {
      if (conv.ended && !first) continue;
      subscribe(conv.id, conv.cursor); // what was missed, then live
      resumed += 1;
    }
    state.lastResumed = resumed;
    const text = first
      ? `Connected · ${frame.dialects.length} dialects`
      : `Connected · reconnected ${state.reconnects}× · resumed ${resumed} conversation${resumed === 1 ? "" : "s"} with since`;
    setConn("open", text);
    alertMsg("");
  }

  function handleFrame(frame) {
    switch (frame.op) {
      case "event":
        onEvent(frame.event);
        break;
      case "started": {
        state.pending.delete(frame.ref);
        conversation(frame.conversation);
        select(frame.conversation);
        $("start-button").disabled = false;
        break;
      }
      case "ack":
      case "recovered":
        state.pending.delete(frame.ref);
        break;
      case "history":
        if (frame.source === "platform") onPlatformHistory(frame);
        break;
      case "error": {
        const pending = frame.ref ? state.pending.get(frame.ref) : null;
        state.pending.delete(frame.ref);
        if (pending && pending.op === "start") $("start-button").disabled = false;
        if (pending && pending.op === "history") $("history-status").textContent = "";
        alertMsg(`${pending ? `${pending.op} failed — ` : ""}${frame.code}: ${frame.message}`);
        break;
      }
      default:
        break; // subscribed, unsubscribed, pong
    }
  }

  // -- forms --------------------------------------------------------------------------------

  function onSubmit(id, handler) {
    $(id).addEventListener("submit", (event) => {
      event.preventDefault();
      handler(event.target);
    });
  }

  function sendContent(content, form) {
    if (!state.selected) return;
    alertMsg("");
    if (command("send", { conversation: state.selected, content }) && form) form.reset();
  }

  onSubmit("start-form", (form) => {
    const data = new FormData(form);
    const participant = { from: data.get("from") || "visitor", name: data.get("name") || undefined };
    const fields = { dialect: data.get("dialect"), participant };
    if (data.get("agent_id")) fields.agent_id = data.get("agent_id");
    if (data.get("subject")) fields.subject = data.get("subject");
    alertMsg("");
    $("start-button").disabled = true;
    command("start", fields);
    setTimeout(() => { $("start-button").disabled = false; }, 15000);
  });

  onSubmit("send-form", (form) => sendContent({ kind: "text", text: form.elements.text.value }, form));
  onSubmit("link-form", (form) => {
    const content = { kind: "url", url: form.elements.url.value };
    if (form.elements.text.value) content.text = form.elements.text.value;
    sendContent(content, form);
  });
  onSubmit("image-form", (form) => sendContent({ kind: "image", url: form.elements.url.value }, form));
  onSubmit("forward-form", (form) => {
    if (state.selected) command("forward", { conversation: state.selected, destination: form.elements.destination.value });
    form.reset();
  });
  $("typing-button").addEventListener("click", () => {
    if (!state.selected) return;
    state.typing = !state.typing;
    command("typing", { conversation: state.selected, active: state.typing });
    updateComposer();
  });
  $("end-button").addEventListener("click", () => {
    if (state.selected) command("end", { conversation: state.selected });
  });
  // The platform's own history (dialects with `history`): a page at a time, going back with
  // its `next` cursor; pages are read, never added to the conversation's log.
  function askHistory(cursor) {
    if (!state.selected) return;
    const fields = { conversation: state.selected, source: "platform", limit: 20 };
    if (cursor) fields.cursor = cursor;
    if (state.pending.has(command("history", fields))) {
      $("history-status").textContent = "Asking the platform…";
    }
  }

  function onPlatformHistory(frame) {
    state.pending.delete(frame.ref);
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
    if (state.ws) {
      const old = state.ws;
      state.ws = null;
      state.open = false;
      old.close(1000, "new token");
    }
    connect();
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
  connect();

  // A hook for the browser tests (and the curious): drop the socket as a network failure would.
  window.gatewayConsole = {
    state,
    // `pauseMs`: how long to wait before reconnecting (default: the usual backoff).
    dropSocket(pauseMs) {
      state.holdMs = typeof pauseMs === "number" ? pauseMs : null;
      if (state.ws) state.ws.close(4000, "dropped by the console");
    },
  };
})();
