// @ts-check
// The conversation survives a reload: turns are kept in sessionStorage (this tab only), and an
// answer that was still streaming is read again from its channel's history.

/**
 * A prompt the user sent.
 * @typedef {object} UserTurn
 * @property {'user'} role
 * @property {string} text
 */

/**
 * The answer to the prompt before it. `reason` stays null while the answer is still arriving
 * (after a reload it is read again from `channel`), then it is the answer's outcome.
 * @typedef {object} AssistantTurn
 * @property {'assistant'} role
 * @property {string} channel
 * @property {string | null} reason
 * @property {string} [answer]
 * @property {string} [thinking]
 * @property {string} [error]
 */

/** @typedef {UserTurn | AssistantTurn} Turn */

const KEY = 'relaychat:conversation:v1';
const MAX_TURNS = 200;

/** @returns {Turn[]} */
export function loadTurns() {
  try {
    const turns = JSON.parse(sessionStorage.getItem(KEY) || '[]');
    return Array.isArray(turns) ? turns : [];
  } catch {
    return [];
  }
}

/** @param {readonly Turn[]} turns */
export function saveTurns(turns) {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(turns.slice(-MAX_TURNS)));
  } catch {
    // storage full or disabled: the conversation just won't survive a reload
  }
}
