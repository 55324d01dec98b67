// @ts-check
// What the list of conversations shows of the answers that are not on screen: one still
// arriving, and one that ended while its conversation was not on screen, until the reader opens
// that conversation. Kept in the tab that follows the answer. Pure: main.js says what happens,
// sidebar.js draws the marks.
import { REJECTED } from './conversation.js';

/**
 * `arriving`: an answer is streaming in the conversation; `answered`, `stopped`, `failed`: an
 * answer ended there, not seen yet; `refused`: the prompt there was not accepted (the answer
 * says why, and offers Edit prompt or Retry).
 * @typedef {'arriving' | 'answered' | 'stopped' | 'failed' | 'refused'} Mark
 */

/** What each mark says in words: the text of its dot in the list. */
export const MARK_WORDS = /** @type {const} */ ({
  arriving: 'answer arriving',
  answered: 'new answer',
  stopped: 'answer stopped',
  failed: 'answer failed',
  refused: 'prompt not accepted',
});

/** @type {Record<string, Mark>} the mark of each way an answer ends; any other: `failed` */
const MARKS = { complete: 'answered', cancelled: 'stopped', refused: 'refused', [REJECTED]: 'refused' };

/** A title that ends a sentence itself ("Please explain.") takes no full stop after it. */
const ENDS_A_SENTENCE = /[\p{Sentence_Terminal}…]$/u;

export class UnseenAnswers {
  constructor() {
    /** @type {Map<string, Mark>} the endings not seen yet, by conversation */
    this.endings = new Map();
  }

  /**
   * An answer ended in the conversation `id` (titled `title`) while `shown` was on screen.
   * Unless that is the one, it is marked until the reader opens it; returns what to announce,
   * once ('' for nothing).
   * @param {string} id
   * @param {string} title
   * @param {string} reason
   * @param {string} shown
   */
  ended(id, title, reason, shown) {
    if (!id || id === shown) return '';
    const mark = MARKS[reason] ?? 'failed';
    this.endings.set(id, mark);
    const words = MARK_WORDS[mark];
    return `${words[0].toUpperCase()}${words.slice(1)} in “${title}”${ENDS_A_SENTENCE.test(title) ? '' : '.'}`;
  }

  /**
   * The reader opened the conversation `id` (or it is gone): its ending has been seen.
   * @param {string} id
   */
  seen(id) {
    this.endings.delete(id);
  }

  /**
   * The mark of each conversation that has one, but the one on screen (`shown`).
   * @param {Iterable<string>} arriving  the conversations with an answer streaming
   * @param {string} shown
   * @returns {Map<string, Mark>}
   */
  marks(arriving, shown) {
    const marks = new Map(this.endings);
    for (const id of arriving) if (id) marks.set(id, 'arriving');
    marks.delete(shown);
    return marks;
  }
}
