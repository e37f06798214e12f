/** Whether a subscription target is a glob pattern (`genesys:*`, `*`), as the gateway decides. */
export function isPattern(target) {
    return /[*?[]/.test(target);
}
/** The gateway's glob (`fnmatchcase`): `*`, `?` and `[...]` classes. */
export function globMatcher(pattern) {
    let source = "";
    for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i];
        if (c === "*")
            source += ".*";
        else if (c === "?")
            source += ".";
        else if (c === "[") {
            const end = pattern.indexOf("]", i + 2);
            if (end < 0)
                source += "\\[";
            else {
                let body = pattern.slice(i + 1, end).replace(/\\/g, "\\\\");
                if (body.startsWith("!"))
                    body = "^" + body.slice(1);
                source += `[${body}]`;
                i = end;
            }
        }
        else
            source += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    }
    const regex = new RegExp(`^${source}$`, "s");
    return (conversation) => regex.test(conversation);
}
export class Subscription {
    constructor(target, delivered, failed, 
    /** A conversation began to hold a gap: the client checks whether the log still has it. */
    gapped = () => { }) {
        this.delivered = delivered;
        this.failed = failed;
        this.gapped = gapped;
        /** The last seq delivered, per conversation. */
        this.cursors = new Map();
        this.handlers = new Set();
        this.held = new Map();
        this.waiting = [];
        this.target = target;
        this.exact = !isPattern(target);
        this.ready = !this.exact;
        const glob = this.exact ? null : globMatcher(target);
        this.matches = glob ?? ((conversation) => conversation === target);
    }
    add(handler) {
        this.handlers.add(handler);
    }
    remove(handler) {
        this.handlers.delete(handler);
        return this.handlers.size === 0;
    }
    /** The exact subscription's cursor is `seq` (its `subscribed` arrived): release what waited. */
    start(seq) {
        this.cursors.set(this.target, seq);
        this.held.delete(this.target);
        this.ready = true;
        const waiting = this.waiting;
        this.waiting = [];
        for (const event of waiting)
            this.offer(event);
    }
    /** Conversations with a gap: a seq beyond the next one is held, waiting for the rest. */
    gaps() {
        return [...this.held].filter(([, held]) => held.size > 0).map(([conversation]) => conversation);
    }
    offer(event) {
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
        if (seq <= cursor)
            return;
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
    firstHeld(conversation) {
        const held = this.held.get(conversation);
        return held === undefined || held.size === 0 ? undefined : Math.min(...held.keys());
    }
    /** The events before `seq` are gone from the gateway's log (retention): go on from `seq`. */
    skipTo(conversation, seq) {
        if (seq - 1 <= (this.cursors.get(conversation) ?? 0))
            return;
        this.cursors.set(conversation, seq - 1);
        this.release(conversation, seq);
    }
    release(conversation, from) {
        const held = this.held.get(conversation);
        if (held === undefined)
            return;
        let next = from;
        let later = held.get(next);
        while (later !== undefined) {
            held.delete(next);
            this.cursors.set(conversation, next);
            this.deliver(later);
            next += 1;
            later = held.get(next);
        }
        for (const old of held.keys())
            if (old < next)
                held.delete(old);
        if (held.size === 0)
            this.held.delete(conversation);
    }
    deliver(event) {
        for (const handler of [...this.handlers]) {
            try {
                handler(event);
            }
            catch (error) {
                this.failed(error);
            }
        }
        if ((event.seq ?? 0) > 0)
            this.delivered(event);
    }
}
