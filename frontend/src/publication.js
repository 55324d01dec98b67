// @ts-check
// What one publication on an answer's channel means (see docs/protocol.md): a piece of the answer
// or of its thinking, or the `done` that ends it.

/**
 * How an answer ended: a `done` publication's `reason` (`complete`, `cancelled`, `error`,
 * `timeout`) or one the page decides itself (`refused`, `rejected`: refused as it was, `lost`,
 * `abandoned`), and a message for the reader.
 * @typedef {object} Outcome
 * @property {string} reason
 * @property {string} error  empty when there is nothing to explain
 */

/**
 * A piece of the answer. `seq` numbers a stream's chunks 1, 2, 3, ...; undefined from a server
 * that does not number them (they are then taken in the order they arrive).
 * @typedef {{text: string, phase: 'answer' | 'thinking', seq?: number}} Chunk
 */

/**
 * @typedef {({kind: 'chunk'} & Chunk)
 *   | {kind: 'done', outcome: Outcome, seq?: number}
 *   | {kind: 'unknown'}} Publication
 */

/** @param {unknown} value */
const sequenceNumber = (value) =>
  typeof value === 'number' && Number.isSafeInteger(value) && value > 0 ? value : undefined;

/**
 * Reads a publication's data. A `done` without a reason still ends the answer (as one that
 * ended unexpectedly); anything else without a text is `unknown` and is skipped. A `done`'s
 * `seq` is its stream's last chunk's.
 * @param {unknown} data
 * @returns {Publication}
 */
export function readPublication(data) {
  if (!data || typeof data !== 'object') return { kind: 'unknown' };
  const { text, done, phase, reason, error, seq } = /** @type {Record<string, unknown>} */ (data);
  if (done) {
    return {
      kind: 'done',
      outcome: {
        reason: typeof reason === 'string' && reason ? reason : 'unknown',
        error: typeof error === 'string' ? error : '',
      },
      ...withSeq(seq),
    };
  }
  if (typeof text !== 'string') return { kind: 'unknown' };
  return { kind: 'chunk', text, phase: phase === 'thinking' ? 'thinking' : 'answer', ...withSeq(seq) };
}

/** @param {unknown} value */
function withSeq(value) {
  const seq = sequenceNumber(value);
  return seq === undefined ? {} : { seq };
}
