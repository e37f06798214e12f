/** The default: kept for the life of the client only. */
export class MemorySeqStore {
    constructor() {
        this.seqs = new Map();
    }
    get(conversation) {
        return this.seqs.get(conversation);
    }
    set(conversation, seq) {
        this.seqs.set(conversation, seq);
    }
}
/** Seqs in `localStorage` or `sessionStorage`, under `prefix + conversation`. */
export class WebStorageSeqStore {
    constructor(storage, prefix = "chat-gateway.seq.") {
        this.storage = storage;
        this.prefix = prefix;
    }
    get(conversation) {
        const value = Number(this.storage.getItem(this.prefix + conversation));
        return Number.isInteger(value) && value > 0 ? value : undefined;
    }
    set(conversation, seq) {
        try {
            this.storage.setItem(this.prefix + conversation, String(seq));
        }
        catch {
            // A full or disabled storage costs the resume after a reload, never the live stream.
        }
    }
}
