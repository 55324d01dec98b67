// @ts-check
// Which earlier turns go to the model with a new prompt: the newest answered exchanges that fit
// the server's limits, so that a long conversation keeps working instead of being refused.
import { countChars } from './limits.js';

/** @import { Limits } from './limits.js' */
/** @import { Turn } from './conversation.js' */

/**
 * One earlier turn as `POST /api/execute` takes it in `history`.
 * @typedef {object} HistoryTurn
 * @property {'user' | 'assistant'} role
 * @property {string} content
 */

/**
 * The history to send with the next prompt, oldest first. Only exchanges whose answer completed
 * are sent (a prompt and its answer, always together); the newest ones are kept and, from the
 * first one that would go over `maxHistoryTurns` turns or `maxHistoryChars` characters, all
 * older ones are left out, so the model sees an unbroken stretch of the latest conversation.
 * @param {readonly Turn[]} turns
 * @param {Limits} limits
 * @returns {HistoryTurn[]}
 */
export function chooseHistory(turns, { maxHistoryTurns, maxHistoryChars }) {
  /** @type {[string, string][]} */
  const exchanges = [];
  for (let i = 0; i + 1 < turns.length; i += 1) {
    const [question, answer] = [turns[i], turns[i + 1]];
    if (question.role === 'user' && answer.role === 'assistant' && answer.reason === 'complete') {
      exchanges.push([question.text, answer.answer || '']);
      i += 1;
    }
  }
  /** @type {HistoryTurn[]} */
  const history = [];
  let chars = 0;
  for (const [prompt, answer] of exchanges.reverse()) {
    const size = countChars(prompt) + countChars(answer);
    if (history.length + 2 > maxHistoryTurns || chars + size > maxHistoryChars) break;
    history.unshift({ role: 'user', content: prompt }, { role: 'assistant', content: answer });
    chars += size;
  }
  return history;
}
