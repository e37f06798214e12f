/** The client's options, states and events: what an application passes and receives. */
import type { Message, Participant, Welcome } from "./schema.js";
import type { SeqStore } from "./store.js";

export type Content = Message["content"];

export type ConnectionState = "connecting" | "connected" | "resuming" | "disconnected";

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** Failed connection attempts in a row (0 once connected). */
  attempt: number;
  /** Successful connections after the first. */
  reconnects: number;
  /** `disconnected`: the close code (1006 when the network failed) and reason. */
  code?: number;
  reason?: string;
  /** `disconnected`: whether the client reconnects by itself, and in how long. */
  willRetry?: boolean;
  retryInMs?: number;
  /** `connected` after `resuming`: the subscriptions resumed. */
  resumed?: number;
}

/** The epoch of a conversation's log changed and the events since the last seq are lost: the
 * subscription starts again from `seq` (a gateway that tracks log epochs says so). */
export interface ResetInfo {
  conversation: string;
  seq: number;
  epoch?: unknown;
}

/** Events `after` < seq < `next` of a conversation are no longer in the gateway's log (its
 * retention trimmed them before they were delivered): delivery goes on from `next`. */
export interface GapInfo {
  conversation: string;
  after: number;
  next: number;
}

export interface ClientEvents {
  state: StateChange;
  welcome: Welcome;
  error: unknown;
  reset: ResetInfo;
  gap: GapInfo;
}

/** The part of the WebSocket API the client uses: the browser's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: any) => void) | null;
}

export type WebSocketConstructor = new (url: string, protocols: string[]) => WebSocketLike;

export interface TokenRequest {
  /** `connect`: no token yet; `expired`: the gateway closed with 4401; `refused`: a connection
   * attempt failed before the gateway welcomed it (an invalid token looks like that). */
  reason: "connect" | "expired" | "refused";
}

export interface ConnectOptions {
  /** The WebSocket URL (`wss://host/v1/ws`), or several (replicas), tried in turn. An
   * `http(s)://` URL is taken as the gateway's base and `/v1/ws` is added. */
  url: string | readonly string[];
  token?: string;
  /** A fresh token, when there is none, on 4401, and after a refused connection. */
  getToken?: (request: TokenRequest) => string | Promise<string>;
  /** The WebSocket implementation: the global one by default; in Node 20, `ws`'s. */
  WebSocket?: WebSocketConstructor;
  /** Where the last seq of each conversation is kept (default: memory). */
  store?: SeqStore;
  /** First and largest reconnect delay (full jitter in between); default 500 and 15000 ms. */
  backoffMs?: { initial?: number; max?: number };
  /** How long a request may wait for its answer (reconnects included); 0: forever. Default 30 s. */
  requestTimeoutMs?: number;
  /** An application-level ping this often; a socket that does not answer within the same time
   * counts as lost. 0 turns it off. Default 20 s. */
  pingIntervalMs?: number;
  /** Prefix of the refs the client makes (default `c`). */
  refPrefix?: string;
}

export interface SubscribeOptions {
  /** The last seq already seen: the events after it are replayed first. Default: the store's
   * seq for the conversation, else none (events from now on). `0`: the whole log. Patterns take
   * no `since` (they deliver live events only). */
  since?: number;
}

export interface SubscriptionHandle {
  readonly target: string;
  /** The seq the subscription started from (the `subscribed` frame's). */
  readonly seq: number;
  /** Stop this handler (and the gateway subscription once no handler is left). */
  unsubscribe(): Promise<void>;
}

export interface StartOptions {
  dialect: string;
  participant: Participant;
  agent_id?: string;
  locale?: string;
  subject?: string;
  metadata?: Record<string, unknown>;
  /** The idempotency key (default: a new one). Re-using a ref repeats the first answer. */
  ref?: string;
}
