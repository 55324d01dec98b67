// @ts-check
// The size limits the backend applies to a prompt and its history, as `GET /api/config` states
// them. The page keeps no copy of the numbers: it uses what the server says.

/**
 * @typedef {object} Limits
 * @property {number} maxTextChars     longest prompt, in characters
 * @property {number} maxHistoryTurns  most earlier turns sent with a prompt
 * @property {number} maxHistoryChars  most characters in those turns, all together
 */

/**
 * @param {unknown} value
 * @returns {value is number}
 */
const isCount = (value) => typeof value === 'number' && Number.isInteger(value) && value >= 0;

/**
 * The limits in a `GET /api/config` body (`{max_text_chars, max_history_turns,
 * max_history_chars}`); throws when one is missing or not a whole number, so that no half-read
 * configuration is ever used.
 * @param {unknown} body
 * @returns {Limits}
 */
export function readLimits(body) {
  const config = /** @type {Record<string, unknown>} */ (body && typeof body === 'object' ? body : {});
  const { max_text_chars, max_history_turns, max_history_chars } = config;
  if (!isCount(max_text_chars) || !isCount(max_history_turns) || !isCount(max_history_chars)) {
    throw new Error('the server sent limits the page cannot read');
  }
  return { maxTextChars: max_text_chars, maxHistoryTurns: max_history_turns, maxHistoryChars: max_history_chars };
}

/**
 * Characters as the backend counts them (Unicode code points), not UTF-16 code units as
 * `String.length` does: an emoji is one character, not two.
 * @param {string} text
 */
export const countChars = (text) => [...text].length;

/** @param {number} count */
const formatted = (count) => count.toLocaleString('en');

/**
 * What the composer says about a prompt's length against the server's `limit` (counted as the
 * server counts): nothing while it is well under; the count near the limit; over it, that it
 * cannot be sent. Nothing is cut: a browser's `maxlength` counts UTF-16 units (an emoji is two)
 * and drops the end of a pasted text without a word.
 * @param {string} text
 * @param {number} limit
 * @returns {{over: boolean, message: string}}
 */
export function lengthNotice(text, limit) {
  const count = countChars(text);
  const counted = `${formatted(count)} of ${formatted(limit)} characters`;
  if (count > limit) return { over: true, message: `${counted}: shorten the prompt to send it.` };
  if (count >= limit * 0.9) return { over: false, message: `${counted}.` };
  return { over: false, message: '' };
}

/**
 * What is said (politely, once) when the prompt crosses the limit as it is typed or pasted: over
 * it, and back under it; nothing while it stays on one side. Said only at Enter before, a
 * screen reader's user typed on past the limit without knowing.
 * @param {boolean} wasOver  whether it was over the limit before this change
 * @param {boolean} over  whether it is now
 * @param {number} limit
 */
export function limitCrossing(wasOver, over, limit) {
  if (over === wasOver) return '';
  const most = `${formatted(limit)}-character limit`;
  return over ? `Your message is over the ${most}; shorten it to send it.` : `Your message is within the ${most} again.`;
}
