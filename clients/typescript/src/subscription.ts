/**
 * One subscription's delivery: each event once and, per conversation, in seq order.
 *
 * The socket may carry an event more than once (a conversation covered by a pattern and by its
 * own subscription, a replay after a resume) and, across a resume, out of order (a pattern's
 * live event before the replay that precedes it). A `Subscription` keeps a cursor per
 * conversation (the last seq it delivered), drops what is at or below it, holds what is beyond
 * the next seq until the gap is filled, and hands ephemeral events (seq 0) straight through.
 */
import type { Event } from "./schema.js";

export type EventHandler = (event: Event) => void;

/** Whether a subscription target is a glob pattern (`genesys:*`, `*`), as the gateway decides. */
export function isPattern(target: string): boolean {
  return /[*?[]/.test(target);
}

/** The gateway's glob (`fnmatchcase`): `*`, `?` and `[...]` classes. */
export function globMatcher(pattern: string): (conversation: string) => boolean {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") source += ".*";
    else if (c === "?") source += ".";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) source += "\\[";
      else {
        let body = pattern.slice(i + 1, end).replace(/\\/g, "\\\\");
        if (body.startsWith("!")) body = "^" + body.slice(1);
        source += `[${body}]`;
        i = end;
      }
    } else source += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  const regex = new RegExp(`^${source}$`, "s");
  return (conversation) => regex.test(conversation);
}

export class Subscription {
  readonly target: string;
  readonly exact: boolean;
  readonly matches: (conversation: string) => boolean;
  /** The last seq delivered, per conversation. */
  readonly cursors = new Map<string, number>();
  /** For an exact subscription: the cursor is known (its first `subscribed` arrived). */
  ready: boolean;
  private readonly handlers = new Set<EventHandler>();
  private readonly held = new Map<string, Map<number, Event>>();
  private waiting: Event[] = [];

  constructor(
    target: string,
    private readonly delivered: (event: Event) => void,
    private readonly failed: (error: unknown) => void,
    /** A conversation began to hold a gap: the client checks whether the log still has it. */
    private readonly gapped: (conversation: string) => void = () => {},
  ) {
    this.target = target;
    this.exact = !isPattern(target);
    this.ready = !this.exact;
    const glob = this.exact ? null : globMatcher(target);
    this.matches = glob ?? ((conversation) => conversation === target);
  }

  add(handler: EventHandler): void {
    this.handlers.add(handler);
  }

  remove(handler: EventHandler): boolean {
    this.handlers.delete(handler);
    return this.handlers.size === 0;
  }

  /** The exact subscription's cursor is `seq` (its `subscribed` arrived): release what waited. */
  start(seq: number): void {
    this.cursors.set(this.target, seq);
    this.held.delete(this.target);
    this.ready = true;
    const waiting = this.waiting;
    this.waiting = [];
    for (const event of waiting) this.offer(event);
  }

  /** Conversations with a gap: a seq beyond the next one is held, waiting for the rest. */
  gaps(): string[] {
    return [...this.held].filter(([, held]) => held.size > 0).map(([conversation]) => conversation);
  }

  offer(event: Event): void {
    const seq = event.seq ?? 0;
    if (seq === 0) {
      this.deliver(event);
      return;
    }
    if (!this.ready) {
      this.waiting.push(event);
      return;
    }
    const conversation = event.conversation_id;
    const cursor = this.cursors.get(conversation) ?? seq - 1; // a pattern's first sight
    if (seq <= cursor) return;
    if (seq > cursor + 1) {
      let held = this.held.get(conversation);
      if (held === undefined) {
        this.held.set(conversation, (held = new Map()));
        queueMicrotask(() => this.gapped(conversation));
      }
      held.set(seq, event);
      this.cursors.set(conversation, cursor);
      return;
    }
    this.cursors.set(conversation, seq);
    this.deliver(event);
    this.release(conversation, seq + 1);
  }

  /** The lowest seq held beyond a gap, if any. */
  firstHeld(conversation: string): number | undefined {
    const held = this.held.get(conversation);
    return held === undefined || held.size === 0 ? undefined : Math.min(...held.keys());
  }

  /** The events before `seq` are gone from the gateway's log (retention): go on from `seq`. */
  skipTo(conversation: string, seq: number): void {
    if (seq - 1 <= (this.cursors.get(conversation) ?? 0)) return;
    this.cursors.set(conversation, seq - 1);
    this.release(conversation, seq);
  }

  private release(conversation: string, from: number): void {
    const held = this.held.get(conversation);
    if (held === undefined) return;
    let next = from;
    let later = held.get(next);
    while (later !== undefined) {
      held.delete(next);
      this.cursors.set(conversation, next);
      this.deliver(later);
      next += 1;
      later = held.get(next);
    }
    for (const old of held.keys()) if (old < next) held.delete(old);
    if (held.size === 0) this.held.delete(conversation);
  }

  private deliver(event: Event): void {
    for (const handler of [...this.handlers]) {
      try {
        handler(event);
      } catch (error) {
        this.failed(error);
      }
    }
    if ((event.seq ?? 0) > 0) this.delivered(event);
  }
}
