// @ts-check
// What one publication on an answer's channel means (see docs/protocol.md): a piece of the answer
// or of its thinking, or the `done` that ends it.

/**
 * How an answer ended: a `done` publication's `reason` (`complete`, `cancelled`, `error`,
 * `timeout`) or one the page decides itself (`refused`, `lost`), and a message for the reader.
 * @typedef {object} Outcome
 * @property {string} reason
 * @property {string} error  empty when there is nothing to explain
 */

/**
 * @typedef {{kind: 'chunk', text: string, phase: 'answer' | 'thinking'}
 *   | {kind: 'done', outcome: Outcome}
 *   | {kind: 'unknown'}} Publication
 */

/**
 * Reads a publication's data. A `done` without a reason still ends the answer (as one that
 * ended unexpectedly); anything else without a text is `unknown` and is skipped.
 * @param {unknown} data
 * @returns {Publication}
 */
export function readPublication(data) {
  if (!data || typeof data !== 'object') return { kind: 'unknown' };
  const { text, done, phase, reason, error } = /** @type {Record<string, unknown>} */ (data);
  if (done) {
    return {
      kind: 'done',
      outcome: {
        reason: typeof reason === 'string' && reason ? reason : 'unknown',
        error: typeof error === 'string' ? error : '',
      },
    };
  }
  if (typeof text !== 'string') return { kind: 'unknown' };
  return { kind: 'chunk', text, phase: phase === 'thinking' ? 'thinking' : 'answer' };
}
