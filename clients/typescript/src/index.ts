/**
 * `@chat-gateway/client`: a typed client of the chat dialect gateway's unified WebSocket.
 *
 * ```ts
 * import { connect } from "@chat-gateway/client";
 * const gateway = connect({ url: "wss://gateway.example/v1/ws", getToken: fetchToken });
 * await gateway.subscribe("genesys:*", (event) => render(event));
 * const { conversation } = await gateway.start({ dialect: "genesys", participant: { from: "ana" } });
 * await gateway.send(conversation, { kind: "text", text: "hello" });
 * ```
 */
export { connect, GatewayClient } from "./client.js";
export type {
  ClientEvents,
  ConnectionState,
  ConnectOptions,
  Content,
  GapInfo,
  ResetInfo,
  StartOptions,
  StateChange,
  SubscribeOptions,
  SubscriptionHandle,
  TokenRequest,
  WebSocketConstructor,
  WebSocketLike,
} from "./types.js";
export { ClientCodes, GatewayError } from "./errors.js";
export { MemorySeqStore, WebStorageSeqStore } from "./store.js";
export type { SeqStore, StorageLike } from "./store.js";
export { globMatcher, isPattern } from "./subscription.js";
export type { EventHandler } from "./subscription.js";
export type * from "./schema.js";
