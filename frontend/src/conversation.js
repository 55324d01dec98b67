// @ts-check
// A conversation as the page keeps it: its turns, a title taken from its first prompt, and the
// changes a reader makes to it (ask again, edit a prompt and resend, rename). Pure: storage.js
// keeps conversations, main.js shows them.

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
 * @property {boolean} [stopPressed]  Stop was pressed while it ran: a page that opens it while it
 *   still runs (a reload before the server heard) tells the server again
 * @property {Resend} [resend]  its prompt was being sent again (lost on the way, or refused for
 *   now) when it was kept: a page that opens it while it still waits sends it again
 */

/**
 * What a prompt being sent again needs beyond its text (the prompt before its answer).
 * @typedef {object} Resend
 * @property {boolean} thinking  it asked for the thinking phase
 * @property {string} refusedFor  the server's words when it refused it for now; '' when it was
 *   lost on the way
 * @property {number} since  when it was first sent, in milliseconds since the epoch
 * @property {false} [reached]  no send of it has left the browser yet (each one was made without
 *   a network): it is sent again once there is one, however late, and `since` is the last try
 */

/** @typedef {UserTurn | AssistantTurn} Turn */

/**
 * @typedef {object} Conversation
 * @property {string} id
 * @property {string} title
 * @property {boolean} renamed  the reader chose the title: it no longer follows the first prompt
 * @property {number} created  milliseconds since the epoch
 * @property {number} updated
 * @property {Turn[]} turns
 */

/**
 * How an answer ended, as kept with its turn.
 * @typedef {object} Ending
 * @property {string} reason
 * @property {string} error
 * @property {string} answer
 * @property {string} thinking
 */

export const UNTITLED = 'New chat';

/**
 * The conversation an address names (`#<id>`, percent-encoded), or '' for none: a fragment that
 * does not decode (`#%E0%A4%A`, from a crafted link) names none. It threw, and the page's start
 * stopped before it picked up the answers still running (a security probe).
 * @param {string} hash `location.hash`
 */
export function addressedId(hash) {
  try {
    return decodeURIComponent(hash.slice(1));
  } catch {
    return '';
  }
}
const TITLE_CHARS = 60;
/** The most turns a conversation keeps (the oldest go first). */
export const MAX_TURNS = 400;

/**
 * A title from a prompt: its first line with the whitespace folded, cut at a word near 60
 * characters (counted as code points, so an emoji is never split).
 * @param {string} prompt
 */
export function titleFrom(prompt) {
  const line = prompt.split('\n').map((l) => l.trim()).find(Boolean) ?? '';
  const folded = line.replace(/\s+/g, ' ');
  const chars = [...folded];
  if (!chars.length) return UNTITLED;
  if (chars.length <= TITLE_CHARS) return folded;
  const cut = chars.slice(0, TITLE_CHARS).join('');
  const space = cut.lastIndexOf(' ');
  return `${(space > TITLE_CHARS / 2 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

/**
 * @param {string} id
 * @param {number} now
 * @returns {Conversation}
 */
export const newConversation = (id, now) => ({
  id,
  title: UNTITLED,
  renamed: false,
  created: now,
  updated: now,
  turns: [],
});

/**
 * The conversation with these turns; unless the reader renamed it, its title follows its first
 * prompt.
 * @param {Conversation} conversation
 * @param {Turn[]} turns
 * @param {number} now
 * @returns {Conversation}
 */
export function withTurns(conversation, turns, now) {
  const kept = turns.slice(-MAX_TURNS);
  const first = kept.find((turn) => turn.role === 'user');
  const title = conversation.renamed ? conversation.title : first ? titleFrom(first.text) : UNTITLED;
  return { ...conversation, turns: kept, title, updated: now };
}

/**
 * The conversation under the title the reader gave it; a blank title goes back to the one from
 * the first prompt.
 * @param {Conversation} conversation
 * @param {string} title
 * @returns {Conversation}
 */
export function renamed(conversation, title) {
  const chosen = title.replace(/\s+/g, ' ').trim();
  if (!chosen) return withTurns({ ...conversation, renamed: false }, conversation.turns, conversation.updated);
  return { ...conversation, title: chosen, renamed: true };
}

/**
 * The conversation with the answer on `channel` ended; null when it has no such answer (it was
 * edited away or asked again meanwhile).
 * @param {Conversation} conversation
 * @param {string} channel
 * @param {Ending} ending
 * @returns {Conversation | null}
 */
export function withEnding(conversation, channel, ending) {
  const index = conversation.turns.findIndex((t) => t.role === 'assistant' && t.channel === channel);
  const turn = conversation.turns[index];
  if (turn?.role !== 'assistant') return null;
  const turns = conversation.turns.slice();
  const { resend: _sent, ...kept } = turn; // over: nothing more to send
  turns[index] = { ...kept, ...ending };
  return { ...conversation, turns };
}

/**
 * The conversation with the answer still running on `channel` marked as waiting for its prompt
 * to be sent again (`resend`), or no longer (null); null when there is no such answer, or no
 * mark to take off.
 * @param {Conversation} conversation
 * @param {string} channel
 * @param {Resend | null} resend
 * @returns {Conversation | null}
 */
export function withResend(conversation, channel, resend) {
  const index = conversation.turns.findIndex((t) => t.role === 'assistant' && t.channel === channel);
  const turn = conversation.turns[index];
  if (turn?.role !== 'assistant' || turn.reason !== null) return null;
  if (!resend && !turn.resend) return null;
  const turns = conversation.turns.slice();
  const { resend: _before, ...kept } = turn;
  turns[index] = resend ? { ...kept, resend } : kept;
  return { ...conversation, turns };
}

/**
 * The conversation with what has arrived so far of the answer on `channel`, which is still
 * arriving; null when it has no such answer, when that answer has ended (its ending, kept by
 * this or another tab, is whole) or when what is kept is as long already.
 * @param {Conversation} conversation
 * @param {string} channel
 * @param {{answer: string, thinking: string}} progress
 * @returns {Conversation | null}
 */
export function withProgress(conversation, channel, { answer, thinking }) {
  const index = conversation.turns.findIndex((t) => t.role === 'assistant' && t.channel === channel);
  const turn = conversation.turns[index];
  if (turn?.role !== 'assistant' || turn.reason !== null) return null;
  // Never shorter than what is kept: a tab further behind must not overwrite another's.
  if (answer.length + thinking.length <= (turn.answer ?? '').length + (turn.thinking ?? '').length) return null;
  const turns = conversation.turns.slice();
  turns[index] = { ...turn, answer, thinking };
  return { ...conversation, turns };
}

/**
 * The conversation with Stop marked on the answer still running on `channel`; null when there is
 * none, or it is marked already.
 * @param {Conversation} conversation
 * @param {string} channel
 * @returns {Conversation | null}
 */
export function withStopPressed(conversation, channel) {
  const index = conversation.turns.findIndex((t) => t.role === 'assistant' && t.channel === channel);
  const turn = conversation.turns[index];
  if (turn?.role !== 'assistant' || turn.reason !== null || turn.stopPressed) return null;
  const turns = conversation.turns.slice();
  turns[index] = { ...turn, stopPressed: true };
  return { ...conversation, turns };
}

/**
 * Asking the last prompt again (Regenerate, Retry): the turns that stay, up to and with that
 * prompt, and its text; null when the conversation does not end with a prompt and its answer.
 * @param {readonly Turn[]} turns
 * @returns {{turns: Turn[], prompt: string} | null}
 */
export function askAgain(turns) {
  const [prompt, answer] = turns.slice(-2);
  if (prompt?.role !== 'user' || answer?.role !== 'assistant') return null;
  return { turns: turns.slice(0, -1), prompt: prompt.text };
}

/** How an answer ends whose prompt the server refused as it was (see `lastActions`). */
export const REJECTED = 'rejected';

/**
 * What the last answer offers once it ended: Regenerate and, unless it completed, Retry. An
 * answer whose prompt the server refused as it was (`REJECTED`: too long, blank once trimmed, a
 * history it does not take) offers neither, as the same prompt would be refused again: it offers
 * to edit the prompt instead.
 * @param {readonly Turn[]} turns
 * @returns {{regenerate: boolean, retry: boolean, edit: boolean}}
 */
export function lastActions(turns) {
  const last = turns.at(-1);
  const reason = last?.role === 'assistant' ? last.reason : null;
  const again = Boolean(reason) && reason !== REJECTED;
  return { regenerate: again, retry: again && reason !== 'complete', edit: reason === REJECTED };
}

/**
 * The message box's text once a refused prompt goes back into it to be edited: the prompt, when
 * the box is blank or holds it already; null when the reader has typed something else there,
 * which is not overwritten (the prompt is then edited where it is).
 * @param {string} box  what the message box holds
 * @param {string} prompt
 * @returns {string | null}
 */
export const promptBack = (box, prompt) => (!box.trim() || box === prompt ? prompt : null);

/**
 * The message box's text once the prompt at `index` was edited where it is and sent: when the
 * server had refused that prompt as it was and the box still holds exactly it (put back there by
 * `promptBack`), that copy goes, as it would be refused again; anything else stays.
 * @param {string} box  what the message box holds
 * @param {readonly Turn[]} turns  as they were before the edit
 * @param {number} index
 * @returns {string}
 */
export function boxAfterEdit(box, turns, index) {
  const [prompt, answer] = [turns[index], turns[index + 1]];
  const refused = prompt?.role === 'user' && answer?.role === 'assistant' && answer.reason === REJECTED;
  return refused && box === prompt.text ? '' : box;
}

/**
 * Editing the prompt at `index` and sending it again: the turns before it stay, the edited prompt
 * follows, and everything after it (its answer and later turns) is dropped.
 * @param {readonly Turn[]} turns
 * @param {number} index
 * @param {string} text
 * @returns {Turn[]}
 */
export function editPrompt(turns, index, text) {
  if (turns[index]?.role !== 'user') throw new Error(`turn ${index} is not a prompt`);
  return [...turns.slice(0, index), { role: 'user', text }];
}

/**
 * An edit of a prompt that the reader changed and has not sent, kept while another conversation
 * is on screen: the prompt at `index`, which read `prompt`, and the text of the edit.
 * @typedef {object} EditDraft
 * @property {number} index
 * @property {string} prompt
 * @property {string} text
 */

/**
 * Whether the prompt at `index` still reads `prompt`: an edit of it can be opened again there, or
 * sent on top of the turns as they are now. Not when another tab edited it, or one before it, or
 * deleted it.
 * @param {readonly Turn[]} turns
 * @param {number} index
 * @param {string} prompt
 */
export function promptStillAt(turns, index, prompt) {
  const turn = turns[index];
  return turn?.role === 'user' && turn.text === prompt;
}

/**
 * The message box's text once an unsent edit that cannot be opened again where it was goes into
 * it: the edit, after whatever else the box holds, a blank line between (neither is lost). What
 * the box held is left as it was, its end too: the reader may be typing there, the caret at it.
 * @param {string} box  what the message box holds
 * @param {string} edit
 * @returns {string}
 */
export function boxWithEdit(box, edit) {
  if (!box.trim() || box === edit) return edit;
  const blankLine = box.endsWith('\n\n') ? '' : box.endsWith('\n') ? '\n' : '\n\n';
  return `${box}${blankLine}${edit}`;
}

/**
 * Newest first (by their last change).
 * @template {{created: number, updated: number}} T  a conversation, or its summary
 * @param {readonly T[]} conversations
 */
export const recentFirst = (conversations) =>
  conversations.slice().sort((a, b) => b.updated - a.updated || b.created - a.created);

/**
 * What the list of conversations needs of one: kept beside it in storage, so that the list is
 * drawn without reading every conversation whole. `unfinished`: an answer in it was still
 * arriving when it was kept (it is followed after a reload).
 * @typedef {object} Summary
 * @property {string} id
 * @property {string} title
 * @property {number} created
 * @property {number} updated
 * @property {boolean} unfinished
 */

/**
 * @param {Conversation} conversation
 * @returns {Summary}
 */
export const summaryOf = ({ id, title, created, updated, turns }) => ({
  id,
  title,
  created,
  updated,
  unfinished: turns.some((turn) => turn.role === 'assistant' && turn.reason === null),
});

/**
 * A summary as read back from storage; null when it is not one.
 * @param {unknown} value
 * @returns {Summary | null}
 */
export function readSummary(value) {
  if (!value || typeof value !== 'object') return null;
  const { id, title, created, updated, unfinished } = /** @type {Record<string, unknown>} */ (value);
  if (typeof id !== 'string' || !id) return null;
  const time = (/** @type {unknown} */ t) => (typeof t === 'number' && Number.isFinite(t) ? t : 0);
  return {
    id,
    title: typeof title === 'string' && title ? title : UNTITLED,
    created: time(created),
    updated: time(updated),
    unfinished: unfinished === true,
  };
}

/** @param {unknown} value */
function readTurn(value) {
  const turn = /** @type {Record<string, unknown>} */ (value && typeof value === 'object' ? value : {});
  if (turn.role === 'user' && typeof turn.text === 'string') return /** @type {UserTurn} */ ({ role: 'user', text: turn.text });
  if (turn.role !== 'assistant' || typeof turn.channel !== 'string') return null;
  /** @type {AssistantTurn} */
  const read = { role: 'assistant', channel: turn.channel, reason: typeof turn.reason === 'string' ? turn.reason : null };
  for (const key of /** @type {const} */ (['answer', 'thinking', 'error'])) {
    if (typeof turn[key] === 'string') read[key] = /** @type {string} */ (turn[key]);
  }
  if (turn.stopPressed === true) read.stopPressed = true;
  const resend = /** @type {Record<string, unknown> | null} */ (turn.resend && typeof turn.resend === 'object' ? turn.resend : null);
  const since = resend?.since;
  if (resend && typeof resend.thinking === 'boolean' && typeof resend.refusedFor === 'string' && typeof since === 'number' && Number.isFinite(since)) {
    read.resend = { thinking: resend.thinking, refusedFor: resend.refusedFor, since, ...(resend.reached === false ? { reached: false } : {}) };
  }
  return read;
}

/**
 * A conversation as read back from storage (written by this or an older version of the page, or
 * by another tab); null when it is not one. Turns it cannot read are left out.
 * @param {unknown} value
 * @returns {Conversation | null}
 */
export function readConversation(value) {
  if (!value || typeof value !== 'object') return null;
  const { id, title, renamed: chosen, created, updated, turns } = /** @type {Record<string, unknown>} */ (value);
  if (typeof id !== 'string' || !id || !Array.isArray(turns)) return null;
  const time = (/** @type {unknown} */ t) => (typeof t === 'number' && Number.isFinite(t) ? t : 0);
  return {
    id,
    title: typeof title === 'string' && title ? title : UNTITLED,
    renamed: chosen === true,
    created: time(created),
    updated: time(updated),
    turns: turns.map(readTurn).filter((turn) => turn !== null),
  };
}
