/**
 * Where the client keeps the last seq it delivered of each conversation, so that a new client
 * (after a page reload, say) resumes a subscription where the previous one stopped.
 */
export interface SeqStore {
  get(conversation: string): number | undefined | Promise<number | undefined>;
  set(conversation: string, seq: number): void | Promise<void>;
}

/** The default: kept for the life of the client only. */
export class MemorySeqStore implements SeqStore {
  private readonly seqs = new Map<string, number>();

  get(conversation: string): number | undefined {
    return this.seqs.get(conversation);
  }

  set(conversation: string, seq: number): void {
    this.seqs.set(conversation, seq);
  }
}

/** The part of the Web Storage API the store uses (`localStorage`, `sessionStorage`). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Seqs in `localStorage` or `sessionStorage`, under `prefix + conversation`. */
export class WebStorageSeqStore implements SeqStore {
  constructor(
    private readonly storage: StorageLike,
    private readonly prefix = "chat-gateway.seq.",
  ) {}

  get(conversation: string): number | undefined {
    const value = Number(this.storage.getItem(this.prefix + conversation));
    return Number.isInteger(value) && value > 0 ? value : undefined;
  }

  set(conversation: string, seq: number): void {
    try {
      this.storage.setItem(this.prefix + conversation, String(seq));
    } catch {
      // A full or disabled storage costs the resume after a reload, never the live stream.
    }
  }
}
