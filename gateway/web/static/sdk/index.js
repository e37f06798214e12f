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
export { ClientCodes, GatewayError } from "./errors.js";
export { MemorySeqStore, WebStorageSeqStore } from "./store.js";
export { globMatcher, isPattern } from "./subscription.js";
