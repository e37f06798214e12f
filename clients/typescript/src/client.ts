/**
 * The gateway's unified WebSocket (`/v1/ws`) as a client that never loses, repeats or reorders
 * an event, across reconnects, replica restarts, token expiry and evictions.
 *
 * - The token travels as the `bearer.<token>` subprotocol, never in the URL.
 * - A dropped socket (network loss, `1001` a replica going away, `4008` a slow reader evicted)
 *   is reconnected with jittered exponential backoff; `4401` asks `getToken` for a fresh token
 *   first; `1009` (a frame too large) is reported and not retried.
 * - After a reconnect every subscription is resumed with `since` = the last seq it delivered,
 *   and each subscription hands its handlers every event once, in seq order per conversation.
 * - Requests (`subscribe`, `history`, the commands) are promises resolved by the gateway's answer
 *   (`subscribed`, `history`, `ack`, `started`, `recovered`) and rejected with a `GatewayError`.
 *   A command in flight when the socket drops is re-sent with the same `ref` after the reconnect
 *   (the gateway acts once per ref and repeats its answer), and its promise settles once.
 *
 * Frames may carry fields this version does not know (a newer gateway's): they are kept, never
 * refused.
 */
import { ClientCodes, GatewayError } from "./errors.js";
import type {
  Ack,
  Event,
  HistoryReply,
  PlatformHistory,
  Recovered,
  Started,
  Subscribed,
  Welcome,
} from "./schema.js";
import { MemorySeqStore, type SeqStore } from "./store.js";
import { type EventHandler, isPattern, Subscription } from "./subscription.js";
import type {
  ClientEvents,
  ConnectionState,
  ConnectOptions,
  Content,
  StartOptions,
  StateChange,
  SubscribeOptions,
  SubscriptionHandle,
  TokenRequest,
  WebSocketConstructor,
  WebSocketLike,
} from "./types.js";

type Frame = Record<string, unknown> & { op?: unknown; ref?: unknown };

interface Pending {
  frame: Frame;
  resolve: (frame: any) => void;
  reject: (error: unknown) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Subscribe requests are not re-sent as such: the resume sends them afresh. */
  subscription?: Subscription;
  /** Answered by a `subscribed`: resolves the resume, not an application promise. */
  resume?: boolean;
}

const OPEN = 1;
const CLOSE_GOING_AWAY = 1001;
const CLOSE_TOO_LARGE = 1009;
const CLOSE_TOKEN_EXPIRED = 4401;
const CLOSE_LOCAL_DROP = 4000;
const HISTORY_PAGE = 500;

/** Connect to the gateway (the client starts connecting at once). */
export function connect(options: ConnectOptions): GatewayClient {
  return new GatewayClient(options);
}

export class GatewayClient {
  state: ConnectionState = "connecting";
  /** The gateway's `welcome` on the current connection. */
  welcome: Welcome | undefined;
  private readonly urls: string[];
  private urlIndex = 0;
  private token: string | undefined;
  private readonly options: ConnectOptions;
  private readonly store: SeqStore;
  private readonly listeners = new Map<keyof ClientEvents, Set<(value: any) => void>>();
  private readonly subscriptions = new Map<string, Subscription>();
  private readonly pending = new Map<string, Pending>();
  private readonly lastSeqs = new Map<string, number>();
  private socket: WebSocketLike | undefined;
  private welcomed = false;
  private everConnected = false;
  private closed = false;
  private attempt = 0;
  private reconnects = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private pingDue: string | undefined;
  private refs = 0;
  private readonly refBase: string;
  private tokenReason: TokenRequest["reason"] | undefined;
  private holdMs: number | undefined;
  private fatal: GatewayError | undefined;
  private opens = 0;

  constructor(options: ConnectOptions) {
    this.options = options;
    this.urls = (typeof options.url === "string" ? [options.url] : [...options.url]).map(wsUrl);
    if (this.urls.length === 0) throw new TypeError("connect: `url` names no gateway");
    this.token = options.token;
    this.store = options.store ?? new MemorySeqStore();
    this.refBase = `${options.refPrefix ?? "c"}-${randomId()}`;
    this.tokenReason = this.token === undefined && options.getToken ? "connect" : undefined;
    void this.open();
  }

  // -- events -------------------------------------------------------------------------------

  /** Listen to `state`, `welcome`, `error` (what no promise carries) or `reset`; returns the
   * function that stops listening. */
  on<K extends keyof ClientEvents>(name: K, listener: (value: ClientEvents[K]) => void): () => void {
    let set = this.listeners.get(name);
    if (set === undefined) this.listeners.set(name, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  private emit<K extends keyof ClientEvents>(name: K, value: ClientEvents[K]): void {
    for (const listener of [...(this.listeners.get(name) ?? [])]) {
      try {
        listener(value);
      } catch (error) {
        if (name !== "error") this.emit("error", error);
      }
    }
  }

  private setState(state: ConnectionState, detail: Partial<StateChange> = {}): void {
    const previous = this.state;
    this.state = state;
    this.emit("state", {
      state,
      previous,
      attempt: this.attempt,
      reconnects: this.reconnects,
      ...detail,
    });
  }

  /** The last seq delivered of a conversation (by any subscription), if any. */
  lastSeq(conversation: string): number | undefined {
    return this.lastSeqs.get(conversation);
  }

  // -- the socket ---------------------------------------------------------------------------

  private async open(): Promise<void> {
    this.retryTimer = undefined;
    if (this.closed) return;
    const generation = ++this.opens; // a reconnect() during the await below starts another
    const resuming = this.everConnected && (this.subscriptions.size > 0 || this.pending.size > 0);
    if (this.state !== (resuming ? "resuming" : "connecting")) {
      this.setState(resuming ? "resuming" : "connecting");
    }
    if (this.tokenReason !== undefined && this.options.getToken) {
      const reason = this.tokenReason;
      try {
        this.token = await this.options.getToken({ reason });
        this.tokenReason = undefined;
      } catch (error) {
        this.emit(
          "error",
          new GatewayError(ClientCodes.TOKEN_EXPIRED, `getToken failed: ${String(error)}`, true),
        );
        if (generation === this.opens) this.scheduleRetry(1006, "getToken failed");
        return;
      }
      if (this.closed || generation !== this.opens) return;
    }
    const WebSocketImpl =
      this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (WebSocketImpl === undefined) {
      const error = new GatewayError(
        "NO_WEBSOCKET",
        "no global WebSocket here: pass `WebSocket` (in Node 20, `ws`'s)",
        false,
      );
      this.fail(error, 1006, error.message);
      return;
    }
    const protocols = ["gateway.v1"];
    if (this.token) protocols.push(`bearer.${this.token}`);
    const url = this.urls[this.urlIndex % this.urls.length];
    let socket: WebSocketLike;
    try {
      socket = new WebSocketImpl(url, protocols);
    } catch (error) {
      this.emit("error", error);
      this.scheduleRetry(1006, String(error));
      return;
    }
    this.socket = socket;
    this.welcomed = false;
    socket.onmessage = (message) => {
      if (this.socket === socket) this.onMessage(message.data);
    };
    socket.onclose = (close) => {
      if (this.socket === socket) this.onClose(close.code, close.reason);
    };
    socket.onerror = () => {
      // The close that follows says what happened.
    };
  }

  private detach(): WebSocketLike | undefined {
    const socket = this.socket;
    this.socket = undefined;
    this.welcomed = false;
    this.welcome = undefined;
    clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    this.pingDue = undefined;
    if (socket !== undefined) {
      socket.onmessage = socket.onclose = socket.onerror = null;
    }
    // Resumes sent on this socket are void with it: the next connection sends its own.
    for (const [ref, pending] of this.pending) if (pending.resume) this.settle(ref)?.resolve(undefined);
    return socket;
  }

  private onClose(code: number, reason: string): void {
    const wasWelcomed = this.welcomed;
    this.detach();
    if (this.closed) return;
    if (!wasWelcomed) {
      this.attempt += 1;
      this.urlIndex += 1; // the next replica
      if (this.options.getToken) this.tokenReason = "refused";
    }
    if (code === CLOSE_TOO_LARGE) {
      this.fail(
        new GatewayError(
          ClientCodes.FRAME_TOO_LARGE,
          `the gateway closed the socket: a frame exceeded its limit (${reason || "1009"})`,
          false,
        ),
        code,
        reason,
      );
      return;
    }
    if (code === CLOSE_TOKEN_EXPIRED) {
      if (!this.options.getToken) {
        this.fail(
          new GatewayError(ClientCodes.TOKEN_EXPIRED, "the token expired and no getToken was given", false),
          code,
          reason,
        );
        return;
      }
      this.tokenReason = "expired";
      this.scheduleRetry(code, reason, 0);
      return;
    }
    if (code === CLOSE_GOING_AWAY) this.urlIndex += 1; // that replica is leaving
    // 1001, 4008 and a lost network alike: back off (with jitter), then resume.
    this.scheduleRetry(code, reason);
  }

  /** Give up on the socket until `reconnect()`: reject what is pending with `error`. */
  private fail(error: GatewayError, code: number, reason: string): void {
    this.fatal = error;
    for (const [ref, pending] of [...this.pending]) {
      if (pending.subscription !== undefined) this.dropSubscription(pending.subscription);
      this.settle(ref)?.reject(error);
    }
    this.emit("error", error);
    this.setState("disconnected", { code, reason, willRetry: false });
  }

  private scheduleRetry(code: number, reason: string, delayMs?: number): void {
    let delay: number;
    if (this.holdMs !== undefined) {
      delay = this.holdMs;
      this.holdMs = undefined;
    } else if (delayMs !== undefined) {
      delay = delayMs;
    } else {
      const initial = this.options.backoffMs?.initial ?? 500;
      const max = this.options.backoffMs?.max ?? 15_000;
      // Full jitter: clients dropped together (a replica leaving) come back spread out.
      const cap = Math.min(max, initial * 2 ** Math.max(0, this.attempt - 1));
      delay = Math.round(initial / 2 + Math.random() * Math.max(0, cap - initial / 2));
    }
    this.setState("disconnected", { code, reason, willRetry: true, retryInMs: delay });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => void this.open(), delay);
  }

  /**
   * Drop the current socket as a network failure would and connect again after `delayMs`
   * (default: at once); also the way back after a `1009` or a `close()`d token failure.
   */
  reconnect(options: { delayMs?: number } = {}): void {
    if (this.closed) return;
    this.fatal = undefined;
    this.holdMs = options.delayMs ?? 0;
    const socket = this.detach();
    clearTimeout(this.retryTimer);
    if (socket !== undefined) {
      try {
        socket.close(CLOSE_LOCAL_DROP, "dropped by the client");
      } catch {
        // already closing
      }
    }
    this.scheduleRetry(1006, "dropped by the client");
  }

  /** Close for good: pending requests are rejected with `CLOSED`. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    const socket = this.detach();
    socket?.close(1000, "client closed");
    const error = new GatewayError(ClientCodes.CLOSED, "the client was closed", false);
    for (const ref of [...this.pending.keys()]) this.settle(ref)?.reject(error);
    this.setState("disconnected", { code: 1000, reason: "client closed", willRetry: false });
  }

  private onMessage(data: unknown): void {
    let frame: Frame;
    try {
      frame = JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data as ArrayBuffer));
    } catch {
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    switch (frame.op) {
      case "event":
        this.onEvent(frame.event as Event);
        return;
      case "welcome":
        this.onWelcome(frame as unknown as Welcome);
        return;
      case "pong":
        if (frame.ref === this.pingDue) this.pingDue = undefined;
        return;
      case "subscribed":
        this.onSubscribed(frame as unknown as Subscribed & Frame);
        return;
      case "error": {
        const error = GatewayError.fromFrame(frame);
        const pending = typeof frame.ref === "string" ? this.settle(frame.ref) : undefined;
        if (pending === undefined) this.emit("error", error);
        else {
          if (pending.subscription !== undefined) this.dropSubscription(pending.subscription);
          pending.reject(error);
        }
        return;
      }
      default:
        if (typeof frame.ref === "string") this.settle(frame.ref)?.resolve(frame);
    }
  }

  private onWelcome(welcome: Welcome): void {
    this.welcomed = true;
    this.welcome = welcome;
    this.attempt = 0;
    const resumed = this.everConnected;
    if (resumed) this.reconnects += 1;
    this.everConnected = true;
    this.emit("welcome", welcome);
    this.startPings();
    const resumes: Promise<unknown>[] = [];
    for (const subscription of this.subscriptions.values()) resumes.push(this.resume(subscription));
    // Then every request still unanswered, with its own ref: the gateway acts once per ref.
    for (const [ref, pending] of this.pending) {
      if (pending.subscription === undefined && !pending.resume) this.transmit(ref, pending.frame);
    }
    if (!resumed || resumes.length === 0) {
      this.setState("connected", resumed ? { resumed: 0 } : {});
      return;
    }
    const socket = this.socket;
    void Promise.allSettled(resumes).then(() => {
      if (this.socket !== socket || !this.welcomed) return;
      this.setState("connected", { resumed: resumes.length });
      void this.catchUp();
    });
  }

  private startPings(): void {
    const every = this.options.pingIntervalMs ?? 20_000;
    if (every <= 0) return;
    this.pingTimer = setInterval(() => {
      if (this.pingDue !== undefined) {
        // No pong for a whole interval: the socket is gone even if no close said so.
        this.reconnect({ delayMs: 0 });
        return;
      }
      this.pingDue = this.nextRef("ping");
      this.transmit(this.pingDue, { op: "ping", ref: this.pingDue });
    }, every);
  }

  // -- requests -----------------------------------------------------------------------------

  private nextRef(op: string): string {
    this.refs += 1;
    return `${this.refBase}-${this.refs}-${op}`;
  }

  /** Send now if connected; else it goes when the next connection is welcomed. */
  private transmit(ref: string, frame: Frame): void {
    const socket = this.socket;
    if (socket === undefined || !this.welcomed || socket.readyState !== OPEN) return;
    const text = JSON.stringify(frame);
    const limit = this.welcome?.max_frame_bytes;
    if (limit !== undefined && new TextEncoder().encode(text).length > limit) {
      this.settle(ref)?.reject(
        new GatewayError(
          ClientCodes.FRAME_TOO_LARGE,
          `the frame is larger than the gateway takes (${limit} bytes): not sent`,
          false,
          ref,
        ),
      );
      return;
    }
    socket.send(text);
  }

  private request<T>(frame: Frame, extra: Partial<Pending> = {}): Promise<T> {
    if (this.closed) {
      return Promise.reject(new GatewayError(ClientCodes.CLOSED, "the client was closed", false));
    }
    if (this.fatal !== undefined && !extra.resume) return Promise.reject(this.fatal);
    const ref = typeof frame.ref === "string" ? frame.ref : this.nextRef(String(frame.op));
    frame.ref = ref;
    return new Promise<T>((resolve, reject) => {
      const timeout = this.options.requestTimeoutMs ?? 30_000;
      const timer =
        timeout > 0
          ? setTimeout(() => {
              const pending = this.settle(ref);
              if (pending?.subscription !== undefined) this.dropSubscription(pending.subscription);
              pending?.reject(
                new GatewayError(ClientCodes.TIMEOUT, `no answer to ${String(frame.op)} within ${timeout} ms`, true, ref),
              );
            }, timeout)
          : undefined;
      this.pending.set(ref, { frame, resolve, reject, timer, ...extra });
      this.transmit(ref, frame);
    });
  }

  /** Forget a pending request and return it (undefined if it was settled already). */
  private settle(ref: string): Pending | undefined {
    const pending = this.pending.get(ref);
    if (pending === undefined) return undefined;
    this.pending.delete(ref);
    clearTimeout(pending.timer);
    return pending;
  }

  // -- subscriptions ------------------------------------------------------------------------

  /**
   * Deliver the events of a conversation (or of every conversation a pattern matches) to
   * `handler`, each once and in seq order, across reconnects. Resolves once the gateway
   * confirmed the subscription; rejects with its error (e.g. `FORBIDDEN`, `LIMIT_EXCEEDED`).
   */
  async subscribe(
    target: string,
    handler: EventHandler,
    options: SubscribeOptions = {},
  ): Promise<SubscriptionHandle> {
    let subscription = this.subscriptions.get(target);
    const handle = (seq: number): SubscriptionHandle => ({
      target,
      seq,
      unsubscribe: () => this.unsubscribe(target, handler),
    });
    if (subscription !== undefined) {
      subscription.add(handler);
      return handle(subscription.cursors.get(target) ?? 0);
    }
    let since: number | undefined;
    if (!isPattern(target)) {
      since = options.since ?? this.lastSeqs.get(target) ?? (await this.store.get(target));
      subscription = this.subscriptions.get(target); // another call may have won the await
      if (subscription !== undefined) {
        subscription.add(handler);
        return handle(subscription.cursors.get(target) ?? 0);
      }
    }
    subscription = new Subscription(
      target,
      (event) => this.delivered(event),
      (error) => this.emit("error", error),
      (conversation) => void this.checkGap(subscription!, conversation),
    );
    subscription.add(handler);
    this.subscriptions.set(target, subscription);
    const frame: Frame = { op: "subscribe", conversation: target };
    if (since !== undefined) frame.since = since;
    const answer = await this.request<Subscribed>(frame, { subscription });
    return handle(answer.seq);
  }

  private async unsubscribe(target: string, handler: EventHandler): Promise<void> {
    const subscription = this.subscriptions.get(target);
    if (subscription === undefined || !subscription.remove(handler)) return;
    this.subscriptions.delete(target);
    if (this.welcomed) {
      await this.request({ op: "unsubscribe", conversation: target }).catch(() => undefined);
    }
  }

  private dropSubscription(subscription: Subscription): void {
    if (this.subscriptions.get(subscription.target) === subscription) {
      this.subscriptions.delete(subscription.target);
    }
  }

  /** After a reconnect: subscribe again from where the subscription stopped. */
  private resume(subscription: Subscription): Promise<unknown> {
    for (const [ref, pending] of this.pending) {
      if (pending.subscription === subscription) {
        // Never confirmed: the first subscribe goes again, as it was.
        this.transmit(ref, pending.frame);
        return new Promise((resolve) => {
          const { resolve: first, reject } = pending;
          pending.resolve = (frame) => (first(frame), resolve(frame));
          pending.reject = (error) => (reject(error), resolve(error));
        });
      }
    }
    const frame: Frame = { op: "subscribe", conversation: subscription.target };
    if (subscription.exact) frame.since = subscription.cursors.get(subscription.target) ?? 0;
    return this.request(frame, { resume: true }).catch((error) => {
      this.dropSubscription(subscription);
      this.emit("error", error);
    });
  }

  private onSubscribed(frame: Subscribed & Frame): void {
    const ref = typeof frame.ref === "string" ? frame.ref : undefined;
    const pending = ref !== undefined ? this.pending.get(ref) : undefined;
    if (pending === undefined) return; // `start` and `recover` subscribe their caller: no ref
    const target = String(pending.frame.conversation);
    const subscription = this.subscriptions.get(target);
    if (subscription !== undefined && subscription.exact) {
      if (frame.recovered === false) {
        // The gateway lost this conversation's log: its seqs start again.
        this.lastSeqs.delete(target);
        this.emit("reset", { conversation: target, seq: frame.seq, epoch: frame.epoch });
        subscription.start(frame.seq);
      } else if (!subscription.ready) subscription.start(frame.seq);
    }
    this.settle(ref!)?.resolve(frame);
  }

  private onEvent(event: Event): void {
    if (event === null || typeof event !== "object") return;
    for (const subscription of [...this.subscriptions.values()]) {
      if (subscription.matches(event.conversation_id)) subscription.offer(event);
    }
  }

  private delivered(event: Event): void {
    const seq = event.seq ?? 0;
    const conversation = event.conversation_id;
    if (seq > (this.lastSeqs.get(conversation) ?? 0)) {
      this.lastSeqs.set(conversation, seq);
      void Promise.resolve(this.store.set(conversation, seq)).catch((error) => this.emit("error", error));
    }
  }

  /**
   * A subscription holds events beyond a gap. Usually the rest is on its way (a replay behind a
   * pattern's live copy, a catch-up); but events trimmed from the log (retention) never come.
   * Ask the log what it has before the first held seq: if nothing after the cursor, the gap is
   * permanent: report it and go on.
   */
  private async checkGap(subscription: Subscription, conversation: string): Promise<void> {
    const first = subscription.firstHeld(conversation);
    if (first === undefined || this.subscriptions.get(subscription.target) !== subscription) return;
    try {
      const page = await this.history(conversation, { before: first, limit: 1 });
      const cursor = subscription.cursors.get(conversation) ?? 0;
      const before = page.events[page.events.length - 1]?.seq ?? 0;
      if (before <= cursor && subscription.firstHeld(conversation) === first) {
        this.emit("gap", { conversation, after: cursor, next: first });
        subscription.skipTo(conversation, first);
      }
    } catch (error) {
      this.emit("error", error);
    }
  }

  /**
   * A pattern delivers live events only: across a reconnect it would skip what happened
   * meanwhile. For each conversation it had seen and that no exact subscription covers, read
   * the missed events from the log (the pattern holds the live ones until the gap is filled).
   */
  private async catchUp(): Promise<void> {
    const patterns = [...this.subscriptions.values()].filter((s) => !s.exact);
    const wanted = new Map<string, number>();
    for (const pattern of patterns) {
      for (const [conversation, cursor] of pattern.cursors) {
        if (this.subscriptions.has(conversation)) continue; // its own subscription replays it
        wanted.set(conversation, Math.min(cursor, wanted.get(conversation) ?? cursor));
      }
    }
    for (const [conversation, since] of wanted) {
      try {
        const events = await this.eventsAfter(conversation, since);
        const first = events[0]?.seq ?? 0;
        if (first > since + 1) {
          // The log no longer has what came between (retention).
          this.emit("gap", { conversation, after: since, next: first });
          for (const pattern of patterns) if (pattern.matches(conversation)) pattern.skipTo(conversation, first);
        }
        for (const event of events) {
          for (const pattern of patterns) if (pattern.matches(conversation)) pattern.offer(event);
        }
      } catch (error) {
        this.emit("error", error);
      }
    }
  }

  private async eventsAfter(conversation: string, since: number): Promise<Event[]> {
    let events: Event[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await this.history(conversation, { before, limit: HISTORY_PAGE });
      events = [...page.events, ...events];
      const oldest = page.events[0]?.seq ?? 0;
      if (!page.has_more || page.events.length === 0 || oldest <= since + 1) break;
      before = oldest;
    }
    return events.filter((event) => (event.seq ?? 0) > since);
  }

  // -- reads and commands -------------------------------------------------------------------

  /** Any op, by name (one this version has no method for): resolved by the frame that answers
   * its ref, rejected by an `error`. In flight across a reconnect, it is re-sent like a command. */
  call<T = Record<string, unknown>>(op: string, fields: Record<string, unknown> = {}): Promise<T> {
    return this.request({ ...fields, op });
  }

  /** A page of the gateway's log: the `limit` events before seq `before` (the latest when
   * omitted), oldest first, with `has_more`. */
  history(conversation: string, options: { before?: number; limit?: number } = {}): Promise<HistoryReply> {
    const frame: Frame = { op: "history", conversation };
    if (options.before !== undefined) frame.before = options.before;
    if (options.limit !== undefined) frame.limit = options.limit;
    return this.request(frame);
  }

  /** A page of the platform's own history (dialects with `history`): `next` pages back. */
  platformHistory(
    conversation: string,
    options: { cursor?: string; limit?: number; ref?: string } = {},
  ): Promise<PlatformHistory> {
    const frame: Frame = { op: "history", source: "platform", conversation };
    if (options.cursor !== undefined) frame.cursor = options.cursor;
    if (options.limit !== undefined) frame.limit = options.limit;
    if (options.ref !== undefined) frame.ref = options.ref;
    return this.request(frame);
  }

  /** Start a vendor session; the gateway subscribes this socket, and `subscribe` follows it. */
  start(options: StartOptions): Promise<Started> {
    return this.request({ op: "start", ...options });
  }

  /** A session's state and stored events. */
  recover(conversation: string, options: { ref?: string } = {}): Promise<Recovered> {
    return this.request({ op: "recover", conversation, ...options });
  }

  send(
    conversation: string,
    content: Content,
    options: { metadata?: Record<string, unknown>; ref?: string } = {},
  ): Promise<Ack> {
    return this.request({ op: "send", conversation, content, ...options });
  }

  typing(conversation: string, active = true, options: { preview?: string; ref?: string } = {}): Promise<Ack> {
    return this.request({ op: "typing", conversation, active, ...options });
  }

  /** Mark messages read, up to a canonical message id (all when omitted). */
  read(conversation: string, options: { up_to?: string; ref?: string } = {}): Promise<Ack> {
    return this.request({ op: "read", conversation, ...options });
  }

  end(conversation: string, options: { ref?: string } = {}): Promise<Ack> {
    return this.request({ op: "end", conversation, ...options });
  }

  forward(conversation: string, destination: string, options: { ref?: string } = {}): Promise<Ack> {
    return this.request({ op: "forward", conversation, destination, ...options });
  }
}

function wsUrl(url: string): string {
  if (/^https?:/.test(url)) {
    const parsed = new URL(url);
    parsed.protocol = parsed.protocol === "https:" ? "wss:" : "ws:";
    if (parsed.pathname === "/" || parsed.pathname === "") parsed.pathname = "/v1/ws";
    return parsed.toString();
  }
  return url;
}

function randomId(): string {
  const bytes = new Uint8Array(6);
  const crypto = (globalThis as { crypto?: { getRandomValues(a: Uint8Array): Uint8Array } }).crypto;
  if (crypto !== undefined) crypto.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
