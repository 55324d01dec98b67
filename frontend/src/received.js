// @ts-check
// The answer as this page has received it: chunks applied in `seq` order, each once, with a
// snapshot from the server to fill what the channel's history could not (docs/protocol.md,
// "Resuming").

/** @import { Chunk } from './publication.js' */

/**
 * What `GET /api/streams/{id}` says about an answer: its chunks 1..`seq` joined by phase.
 * @typedef {object} Snapshot
 * @property {string} text
 * @property {string} thinking
 * @property {number} seq
 */

/**
 * Reads the body of `GET /api/streams/{id}`, or throws saying what is wrong with it.
 * @param {unknown} body
 * @returns {Snapshot & {done: {reason: string, error: string} | null}}
 */
export function readSnapshot(body) {
  const { text, thinking, seq, done } = /** @type {Record<string, unknown>} */ (body ?? {});
  if (typeof text !== 'string' || typeof thinking !== 'string' || !Number.isSafeInteger(seq)) {
    throw new Error('the server sent a snapshot the page cannot read');
  }
  if (done === null || done === undefined) return { text, thinking, seq: Number(seq), done: null };
  const { reason, error } = /** @type {Record<string, unknown>} */ (done);
  return {
    text,
    thinking,
    seq: Number(seq),
    done: {
      reason: typeof reason === 'string' && reason ? reason : 'unknown',
      error: typeof error === 'string' ? error : '',
    },
  };
}

export class ReceivedAnswer {
  constructor() {
    this.text = '';
    this.thinking = '';
    /** The last chunk applied: chunks 1..seq are in `text` and `thinking`. */
    this.seq = 0;
    /** True while a snapshot is awaited: every chunk that arrives meanwhile is held. */
    this.resuming = false;
    /** @type {Map<number, Chunk>} chunks after a gap, or that arrived while resuming */
    this.held = new Map();
  }

  /**
   * Takes one chunk from the channel.
   * - `shown`: it was the next one (or unnumbered) and is now in the text;
   * - `duplicate`: it is already in the text (from a snapshot, or delivered twice);
   * - `held`: a snapshot is awaited; it is applied after it if the snapshot lacks it;
   * - `gap`: chunks before it are missing; it is held until a snapshot fills the gap.
   * @param {Chunk} chunk
   * @returns {'shown' | 'duplicate' | 'held' | 'gap'}
   */
  receive(chunk) {
    if (chunk.seq === undefined) {
      this.append(chunk);
      return 'shown';
    }
    if (chunk.seq <= this.seq) return 'duplicate';
    if (this.resuming || chunk.seq > this.seq + 1) {
      this.held.set(chunk.seq, chunk);
      return this.resuming ? 'held' : 'gap';
    }
    this.append(chunk);
    this.seq = chunk.seq;
    this.drain(); // it may fill the gap before chunks held
    return 'shown';
  }

  /**
   * Whether every chunk up to `lastSeq` (a `done`'s) is here; true when the server did not say.
   * @param {number | undefined} lastSeq
   */
  hasAllUpTo(lastSeq) {
    return lastSeq === undefined || (lastSeq <= this.seq && !this.resuming);
  }

  /** From now until `resumeFrom`, chunks are held, not shown. */
  beginResume() {
    this.resuming = true;
  }

  /**
   * Shows the snapshot (unless the page already has more), then the held chunks that follow it.
   * @param {Snapshot} snapshot
   * @returns {boolean} whether everything received is now shown (false: a gap remains)
   */
  resumeFrom(snapshot) {
    if (snapshot.seq >= this.seq) {
      this.text = snapshot.text;
      this.thinking = snapshot.thinking;
      this.seq = snapshot.seq;
    }
    this.resuming = false;
    for (const seq of this.held.keys()) if (seq <= this.seq) this.held.delete(seq);
    this.drain();
    return this.held.size === 0;
  }

  /** Gives up waiting for a snapshot: what is shown stays, held chunks are dropped. */
  abandonResume() {
    this.resuming = false;
    this.held.clear();
  }

  /** No snapshot for now (ask again later): what is shown stays, and the held chunks that follow
   * it are shown (they arrived while the snapshot was awaited); the others are kept. */
  pauseResume() {
    this.resuming = false;
    this.drain();
  }

  /** Shows the held chunks that follow on from what is shown. */
  drain() {
    for (let next = this.held.get(this.seq + 1); next; next = this.held.get(this.seq + 1)) {
      this.held.delete(this.seq + 1);
      this.append(next);
      this.seq += 1;
    }
  }

  /** @param {Chunk} chunk */
  append(chunk) {
    if (chunk.phase === 'thinking') this.thinking += chunk.text;
    else this.text += chunk.text;
  }
}
