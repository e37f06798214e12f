/** Errors the client rejects a request with, or reports on its `error` event. */
/** Codes the client makes itself (the gateway's own codes, e.g. `INVALID_REQUEST`, `SESSION_NOT_FOUND`, `UNSUPPORTED`, `RATE_LIMITED`, come from its `error` frames). */
export const ClientCodes = {
    /** No answer within `requestTimeoutMs` (the request may still take effect: retry with the same ref is safe). */
    TIMEOUT: "TIMEOUT",
    /** `close()` was called while the request was pending. */
    CLOSED: "CLOSED",
    /** The frame exceeds the gateway's `max_frame_bytes` (never sent), or the gateway closed with 1009. */
    FRAME_TOO_LARGE: "FRAME_TOO_LARGE",
    /** The token expired (4401) and no `getToken` was given, or `getToken` failed. */
    TOKEN_EXPIRED: "TOKEN_EXPIRED",
};
/**
 * A refusal: an `error` frame from the gateway (its `code`, `message`, `recoverable` and details
 * such as `path` or `retry_after_s`), or one of `ClientCodes`.
 */
export class GatewayError extends Error {
    constructor(code, message, recoverable, ref, details = {}) {
        super(`${code}: ${message}`);
        this.name = "GatewayError";
        this.code = code;
        this.recoverable = recoverable;
        this.ref = ref;
        this.details = details;
    }
    /** The error an `error` frame stands for. */
    static fromFrame(frame) {
        const { op: _op, ref, code, message, recoverable, ...details } = frame;
        return new GatewayError(typeof code === "string" ? code : "INTERNAL", typeof message === "string" ? message : "", recoverable === true, typeof ref === "string" ? ref : undefined, details);
    }
}
