// @ts-check
// The chat page: wires the composer, the connection, the conversations and their answers together.
import { Centrifuge } from 'centrifuge';

import {
  ApiError,
  cancel,
  checkReady,
  execute,
  fetchConfig,
  fetchSnapshot,
  fetchToken,
  asNotSent,
  mayHaveBeenAccepted,
  refusedAsItIs,
  refusedForNow,
} from './api.js';
import { answerChannel, channelUser, newStreamId, streamIdOf } from './channel.js';
import { copyText } from './clipboard.js';
import {
  REJECTED,
  addressedId,
  askAgain,
  boxAfterEdit,
  boxWithEdit,
  editPrompt,
  lastActions,
  newConversation,
  promptBack,
  promptStillAt,
  readConversation,
  renamed,
  withEnding,
  withProgress,
  withResend,
  withStopPressed,
  withTurns,
} from './conversation.js';
import { chooseHistory } from './history.js';
import { setIconLabel } from './icons.js';
import { lengthNotice, limitCrossing } from './limits.js';
import { loadHighlighting } from './markdown.js';
import { browserOnline } from './resend.js';
import { ConversationList, tabbableIn } from './sidebar.js';
import { StatusLine } from './status.js';
import { stopAnswer } from './stopping.js';
import { LiveSession } from './session.js';
import { ConversationStore } from './storage.js';
import { subscribeAnswer } from './subscription.js';
import { Toast } from './toast.js';
import { UnseenAnswers } from './unseen.js';
import { RESEND_FOR_MS, forSession, unsentPrompts, waitsToBeSentAgain } from './unsent.js';
import { newParts, waitingNote, withoutAdvice } from './waiting.js';
import { Announcer, ConversationView, SECOND_PRESS_MS, acknowledge } from './view.js';
import { copyFailed, messageOf, storageNews } from './words.js';

/** @import { AssistantTurn, Conversation, EditDraft, Ending, Resend, Turn } from './conversation.js' */
/** @import { Limits } from './limits.js' */
/** @import { AnswerSubscription } from './subscription.js' */
/** @import { AnswerView, UserMessage } from './view.js' */

/**
 * The element with `id`, which the page must have and of that type.
 * @template {typeof HTMLElement} T
 * @param {string} id
 * @param {T} type
 * @returns {InstanceType<T>}
 */
function byId(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`the page has no ${type.name} #${id}`);
  return /** @type {InstanceType<T>} */ (node);
}

const form = byId('composer', HTMLFormElement);
const input = byId('prompt', HTMLTextAreaElement);
const sendButton = byId('send', HTMLButtonElement);
const thinkingSwitch = byId('show-thinking', HTMLInputElement);
const statusLine = byId('status', HTMLElement);
const welcome = byId('welcome', HTMLElement);
const newChatButton = byId('new-chat', HTMLButtonElement);
const sidebar = byId('sidebar', HTMLElement);
const sidebarToggle = byId('toggle-sidebar', HTMLButtonElement);
const closeSidebarButton = byId('close-sidebar', HTMLButtonElement);
/** Everything but the list: behind the list while it is open as a drawer. */
const pageBehind = byId('page', HTMLElement);
/** The first stop for the keyboard: to the message box. */
const skipToPrompt = byId('skip-to-prompt', HTMLAnchorElement);
/** "Conversation deleted", with Undo. */
const toast = new Toast(
  byId('toast', HTMLElement),
  byId('toast-message', HTMLElement),
  byId('toast-action', HTMLButtonElement),
);
const chips = /** @type {HTMLButtonElement[]} */ ([...document.querySelectorAll('.chip')]);
const announcer = new Announcer(byId('announcer', HTMLElement));
const view = new ConversationView({
  scroller: byId('conversation', HTMLElement),
  column: byId('messages', HTMLElement),
  jump: byId('jump', HTMLButtonElement),
  announcer,
});

// ---------------------------------------------------------------------------------------------
// The status line (src/status.js): its news is said through the announcer.

const status = new StatusLine(statusLine, announcer);

/**
 * @param {import('./status.js').StatusPart} part
 * @param {string} text  empty once there is nothing to say
 * @param {() => void} [retry]  offers a Retry button that does this
 */
const showStatus = (part, text, retry) => status.show(part, text, retry);

// ---------------------------------------------------------------------------------------------
// The server's limits.

/** The server's limits (`GET /api/config`), or null while they could not be read. */
let limits = /** @type {Limits | null} */ (null);

/** Reads the server's limits and applies them to the composer; says so when it cannot. */
async function loadLimits() {
  try {
    limits = await fetchConfig();
  } catch (error) {
    showStatus(
      'limits',
      `Cannot read the server's limits (${withoutAdvice(messageOf(error))}), so prompts are sent without ` +
        'the earlier conversation.',
    );
    return;
  }
  showStatus('limits', '');
  showLength();
}

const lengthLine = byId('prompt-length', HTMLElement);
/** Says that the prompt waits for the answer streaming (see `sayThePromptWaits`). */
const waitLine = byId('prompt-waits', HTMLElement);

/** Whether the prompt was over the limit when its length was last shown. */
let wasOver = false;

/**
 * Says how long the prompt is once it nears the server's limit, and that it cannot be sent
 * over it; whether it is over. Crossing the limit, either way, is said once through the
 * announcer (the line is no live region: said at every keystroke, it would drown the typing).
 * Without the limits the server judges (and says why it refuses).
 */
function showLength() {
  const { over, message } = limits ? lengthNotice(input.value, limits.maxTextChars) : { over: false, message: '' };
  lengthLine.textContent = message;
  lengthLine.hidden = !message;
  lengthLine.classList.toggle('over', over);
  input.setAttribute('aria-invalid', String(over));
  if (limits) announcer.say(limitCrossing(wasOver, over, limits.maxTextChars));
  wasOver = over;
  return over;
}

/**
 * The earlier turns to send with a prompt. Without the server's limits the fallback is none at
 * all, which the server accepts whatever its limits are; the prompt's own length is then left
 * to the server, which explains a refusal.
 * @param {readonly Turn[]} earlier
 */
const historyToSend = (earlier) => (limits ? chooseHistory(earlier, limits) : []);

// ---------------------------------------------------------------------------------------------
// The session and the real-time connection (src/session.js).

const websocketUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/connection/websocket`;

const session = new LiveSession({
  connectTo: (token, getToken) => new Centrifuge(websocketUrl, { token, getToken }),
  fetchToken,
  checkReady,
  prepare: () => (limits ? Promise.resolve() : loadLimits()),
  say: (text, retry) => showStatus('connection', text, retry),
  shown: () => status.parts.connection.text,
  announce: (text) => announcer.say(text),
  answersUnderWay: () => runs.size,
  userChanged: (why) => {
    for (const run of [...runs.values()]) {
      if (!run.refused) run.subscription.stop('lost', why);
    }
  },
  started: () => {
    followUnfinished();
    followStoredUnfinished();
    updateComposer();
    loadHighlighting();
    // Ready to type, with a keyboard at hand (on a phone focusing would pop the keyboard up).
    if (document.activeElement === document.body && matchMedia('(hover: hover) and (pointer: fine)').matches) {
      input.focus();
    }
  },
  changed: () => updateComposer(),
  origin: location.origin,
  news: typeof BroadcastChannel === 'function' ? new BroadcastChannel('relaychat-session') : null,
});
const renewSession = () => session.renew();

/**
 * `run`'s prompt was refused for its session: the answer ends as refused, said so (and Retry
 * offered) once the new session is in place.
 * @param {Run} run
 * @param {unknown} error
 */
async function refusedForSession(run, error) {
  run.refused = true;
  await renewSession();
  // The prompt went as its channel's user: a session now of another user is a new one.
  const renewed = session.connection !== null && session.connection.user !== channelUser(run.channel);
  run.subscription.stop('refused', renewed ? 'the session had ended; a new one has started, so send it again' : messageOf(error));
}

// ---------------------------------------------------------------------------------------------
// Answers that are streaming: followed until they end, whichever conversation is on screen.

/**
 * @typedef {object} Run
 * @property {string} conversationId
 * @property {string} channel
 * @property {AnswerSubscription} subscription
 * @property {Promise<unknown>} accepted  the reply to `POST /api/execute`, or to the last one sent again (settled
 *   for a restored answer)
 * @property {{text: string, thinking: string}} latest
 * @property {AnswerView | null} view  its view while its conversation is on screen
 * @property {boolean} stopping
 * @property {{stop: string, unsure: string, said?: string[]}} notes  what is going on with it while
 *   it arrives (`said`: the parts the note had when the announcer last spoke of it)
 * @property {ReturnType<typeof setTimeout>} [progressTimer]  its text is kept when this fires
 * @property {boolean} [refused]  refused for its session: it ends as refused, not with the session
 * @property {Ending} [ending]  how it ended, once it did
 * @property {boolean} [heard]  news of it came from the server: its prompt got through
 * @property {boolean} [unsent]  its prompt's request failed on the way, and no news came since:
 *   the prompt may not have got through
 * @property {string} [refusedFor]  why the server refused its prompt for now (503 with
 *   Retry-After), while it is sent again
 * @property {boolean} [resending]  while its prompt is unsent, the resending decides when to give
 *   up on it, not the follower (see `keepSending` in src/unsent.js)
 * @property {boolean} [neverReached]  no send of its prompt has left the browser (each was made
 *   without a network): nothing of it is on the server
 */

/** How often the text of an answer still arriving is kept with its turn, so that a tab closed
 * (or a laptop asleep) past the 2 minutes the server keeps it reopens what was shown; not at
 * every chunk. */
const PROGRESS_SAVE_MS = 1_000;

/** @type {Map<string, Run>} by channel */
const runs = new Map();

/** @param {string} conversationId */
const runIn = (conversationId) => [...runs.values()].find((run) => run.conversationId === conversationId);

/**
 * Follows the answer on `turn`'s channel in the conversation `conversationId`, shows it in
 * `answerView` (while that conversation is on screen), and keeps its ending with its turn.
 * @param {string} conversationId
 * @param {AssistantTurn} turn
 * @param {AnswerView | null} answerView  none while its conversation is not on screen
 * @param {{restoring?: boolean, accepted?: Promise<unknown>}} [options]
 */
function follow(conversationId, turn, answerView, { restoring = false, accepted = Promise.resolve() } = {}) {
  if (!session.connection) return null;
  const { channel } = turn;
  const { centrifuge, user } = session.connection;
  const subscribe = () =>
    subscribeAnswer(centrifuge, channel, {
      show: (answer) => {
        if (answer.seq > 0) unsent.through(run);
        // Nothing received yet (a snapshot that could not be had) leaves what was kept of it.
        if (answer.seq === 0 && !answer.text && !answer.thinking) return;
        run.latest = { text: answer.text, thinking: answer.thinking };
        run.view?.show(answer.text, answer.thinking);
        keepProgress(run);
      },
      unsure: (message) => {
        if (waitsToBeSentAgain(run)) return; // its own note says what goes on
        const waited = Boolean(run.notes.unsure);
        // Not "the server is not answering": it is another tab's resend that waits (a review).
        const elsewhere = message === SENT_AGAIN_ELSEWHERE;
        const note = elsewhere ? 'Another tab is sending this prompt again; the answer shows here once the server takes it.' : '';
        run.notes.unsure = note || (message ? waitingNote(message, { stopping: run.stopping }) : '');
        showNotes(run);
        // The note going is news too (it went without a word); not when the answer ended with
        // it (its ending is said), which is known once the outcome's microtasks have run.
        if (waited && !message) {
          setTimeout(() => {
            if (runs.get(channel) === run && !run.notes.unsure) announcer.say('The server is answering again.');
          }, 0);
        }
      },
      readSnapshot: async () => {
        // Refused for now and to be sent again: the server has nothing of it, and the resend
        // (not a silence) decides when to give up. Nothing learnt, as far as the follower goes.
        if (waitsToBeSentAgain(run)) throw new ApiError(503, 'the prompt waits to be sent again');
        // Sent again from another tab (its mark kept with the turn, still in time): the server
        // may not have it yet, and that tab's resending says how it ends (review80 M1: this tab
        // ended it from the 404, and took the mark off, while the other one sent it again).
        // Not once Stop is pressed here: the 404 says it is stopped, and that tab hears of it.
        // Only for an answer this tab did not ask (a review: every snapshot read storage first).
        if (restoring && !run.unsent && !run.stopping && (await sentAgainElsewhere(run))) {
          throw new ApiError(503, SENT_AGAIN_ELSEWHERE);
        }
        try {
          const snapshot = await fetchSnapshot(streamIdOf(channel));
          unsent.through(run); // the server has it
          return snapshot;
        } catch (error) {
          // The session ended: once the new one is adopted, this answer ends as lost with it.
          if (forSession(error)) await renewSession();
          throw run.unsent ? asNotSent(error, run.refusedFor) : error;
        }
      },
      restoring,
    });
  /** @type {Run} */
  const run = {
    conversationId,
    channel,
    accepted,
    latest: { text: turn.answer ?? '', thinking: turn.thinking ?? '' },
    view: answerView,
    stopping: false,
    notes: { stop: '', unsure: '' },
    // Asked in an earlier session (see `LiveSession.adopt`): its channel is another user's now.
    subscription: channelUser(channel) === user ? subscribe() : earlierSession(),
  };
  runs.set(channel, run);
  recordEnding(run);
  return run;
}

/** What a follower's snapshot says while another tab sends the prompt again. */
const SENT_AGAIN_ELSEWHERE = 'the prompt is being sent again from another tab';

/**
 * `run`'s turn as kept (another tab's changes included), or null.
 * @param {Run} run
 * @returns {Promise<AssistantTurn | null>}
 */
async function storedTurn(run) {
  try {
    const stored = await store.get(run.conversationId);
    const turn = stored?.turns.find((each) => each.role === 'assistant' && each.channel === run.channel);
    return turn?.role === 'assistant' ? turn : null;
  } catch {
    return null;
  }
}

/**
 * Whether another tab is sending `run`'s prompt again: its mark is kept with the turn, and it
 * is still in time (a tab closed meanwhile leaves the mark, which says nothing after that).
 * @param {Run} run
 */
async function sentAgainElsewhere(run) {
  const turn = await storedTurn(run);
  return Boolean(turn?.resend && !turn.reason && Date.now() < turn.resend.since + RESEND_FOR_MS);
}

/**
 * Whether another tab pressed Stop on `run`'s answer, as kept with its turn: stopped here too
 * if so, on the server as well (review80 M1: a resend from this tab started the answer Stop had
 * been pressed on there). Another ending kept there is not taken in: a tab that followed the
 * turn before this one kept its mark took the server's 404 for "not sent" (a review: the
 * prompt was then never sent from either tab).
 * @param {Run} run
 */
async function endedElsewhere(run) {
  const turn = await storedTurn(run);
  if (!turn || runs.get(run.channel) !== run || run.stopping) return false;
  if (!turn.stopPressed && turn.reason !== 'cancelled') return false;
  void stopRun(run);
  return true;
}

/** Answers whose prompt may not have got through, and its sending again (src/unsent.js). */
const unsent = unsentPrompts({
  showNotes: (run) => showNotes(/** @type {Run} */ (run)),
  mark: (run, resend) => keepResendMark(/** @type {Run} */ (run), resend),
  following: (run) => runs.get(run.channel) === run,
  endForSession: (run, error) => refusedForSession(/** @type {Run} */ (run), error),
  endedElsewhere: (run) => endedElsewhere(/** @type {Run} */ (run)),
});

/**
 * Keeps with `run`'s turn that its prompt waits to be sent again (or, null, no longer).
 * @param {Run} run
 * @param {Resend | null} resend
 */
function keepResendMark(run, resend) {
  if (run.conversationId === current.id) current = withResend(current, run.channel, resend) ?? current;
  store.update(run.conversationId, (stored) => withResend(stored, run.channel, resend), { quiet: true });
}

/**
 * A restored answer whose prompt was being sent again when the page was left: sent again from
 * here, if still in time (see `restore` in src/unsent.js).
 * @param {AssistantTurn} turn
 * @param {Run | null} run
 * @param {readonly Turn[]} turns  its conversation's
 */
function sendIfUnsent(turn, run, turns) {
  if (!run) return;
  unsent.restore(turn, run, turns, async (text, earlier, thinking) => {
    if (!limits) await loadLimits(); // the history is chosen by them
    return execute({ text, channel: turn.channel, thinking, history: historyToSend(earlier) });
  });
}

/**
 * The ending of an answer asked in an earlier session, which can no longer be followed (its
 * channel is that session's user's: Centrifugo would refuse the subscription).
 * @returns {AnswerSubscription}
 */
const earlierSession = () => ({
  outcome: Promise.resolve({ reason: 'lost', error: 'it was asked in an earlier session, which has ended' }),
  stop: () => {},
  check: () => {},
  settleStop: () => {},
  wantStop: () => {},
});

/**
 * Shows what is going on with the answer while it arrives, on its view (Stop's news first).
 * @param {Run} run
 */
function showNotes(run) {
  const parts = [run.notes.stop, run.notes.unsure].filter(Boolean);
  // Said by the announcer too: the note sits in an answer that is busy while it arrives (and
  // in a page that is inert behind the phone drawer), where a live region is not heard. Only
  // its new parts: one that goes leaves the rest, which is not news.
  const news = newParts(run.notes.said ?? [], parts);
  if (news) announcer.say(news);
  run.notes.said = parts;
  run.view?.setNote(parts.join(' '));
}

/**
 * Keeps what has arrived of the answer with its turn, at most every PROGRESS_SAVE_MS.
 * @param {Run} run
 */
function keepProgress(run) {
  if (run.progressTimer !== undefined) return;
  run.progressTimer = setTimeout(() => saveProgress(run), PROGRESS_SAVE_MS);
}

/**
 * Keeps what has arrived of the answer with its turn now.
 * @param {Run} run
 */
function saveProgress(run) {
  clearTimeout(run.progressTimer);
  run.progressTimer = undefined;
  if (run.ending) return; // kept whole with its ending
  const progress = { answer: run.latest.text, thinking: run.latest.thinking };
  store.update(run.conversationId, (stored) => withProgress(stored, run.channel, progress), { quiet: true });
}

// Leaving the page (another tab, a phone putting it away, the window closed, a navigation):
// what is on screen is kept now, not up to PROGRESS_SAVE_MS later, when the page may be gone (an
// outside-in probe: up to ~70 characters shown were never kept, and after the 2 minutes the
// server keeps an answer they were lost). A page going away runs no more code (and hears
// `visibilitychange` before `pagehide`, or instead of it): each answer's text is written on its
// own (`keepProgressNow`), nothing read first and nothing else written over.
const keepAllProgress = () => {
  for (const run of runs.values()) {
    if (run.progressTimer === undefined || run.ending) continue;
    clearTimeout(run.progressTimer);
    run.progressTimer = undefined;
    store.keepProgressNow(run.channel, { answer: run.latest.text, thinking: run.latest.thinking });
  }
};
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') keepAllProgress();
});
window.addEventListener('pagehide', keepAllProgress);

/**
 * Waits for the answer's outcome, keeps it with its turn (so that a reload, another tab or a
 * later visit shows it as it ended) and shows it.
 * @param {Run} run
 */
async function recordEnding(run) {
  const { reason, error } = await run.subscription.outcome;
  runs.delete(run.channel);
  clearTimeout(run.progressTimer);
  const ending = { reason, error, answer: run.latest.text, thinking: run.latest.thinking };
  run.ending = ending;
  const onScreen = current.id === run.conversationId;
  if (onScreen) {
    current = withEnding(current, run.channel, ending) ?? current;
    run.view?.finish(reason, error, { stopPressed: run.stopping });
    offerLastActions();
    updateComposer();
  }
  let title = ''; // none once the conversation is gone
  await store.update(run.conversationId, (stored) => {
    title = stored.title;
    return withEnding(stored, run.channel, ending);
  });
  // Ended out of sight: the list marks its conversation until it is opened, and says so once.
  if (title && !onScreen) announcer.say(unseen.ended(run.conversationId, title, reason, current.id));
  refreshList();
}

/**
 * A restored answer whose Stop the server may not have heard: told again.
 * @param {AssistantTurn} turn
 * @param {Run | null} run
 */
function stopIfPressed(turn, run) {
  if (turn.stopPressed && run) void stopRun(run);
}

/** Follows every answer of the conversation on screen that was still arriving when it was kept. */
function followUnfinished() {
  if (!session.connection) return; // they are followed once the session has started
  for (const [turn, answerView] of unfinished) {
    if (runs.has(turn.channel)) continue;
    const run = follow(current.id, turn, answerView, { restoring: true });
    stopIfPressed(turn, run);
    sendIfUnsent(turn, run, current.turns);
  }
  unfinished.clear();
}

/**
 * Follows the answers that were still arriving in the other kept conversations too (after a
 * reload, say): an answer that ends while its conversation is not on screen is kept as it ended.
 * Left until that conversation is opened, it was lost once the server forgot it (2 minutes).
 */
async function followStoredUnfinished() {
  for (const { id, unfinished } of await store.list()) {
    if (!unfinished) continue; // read whole only where an answer was still arriving
    const conversation = await store.get(id);
    if (!conversation || !session.connection || id === current.id) continue;
    for (const turn of conversation.turns) {
      if (turn.role === 'assistant' && !turn.reason && !runs.has(turn.channel)) {
        const run = follow(id, turn, null, { restoring: true });
        stopIfPressed(turn, run);
        sendIfUnsent(turn, run, conversation.turns);
      }
    }
  }
  refreshList(); // listed as arriving
}

/** Stops the answer streaming in the conversation on screen (Stop, Esc). */
async function stop() {
  const run = runIn(current.id);
  if (run) await stopRun(run);
}

/**
 * Stops `run`: kept with its turn first, so that a page opened before the server heard (a
 * reload while it cannot be reached) tells it again (an outside-in probe: the Stop was forgotten,
 * and the answer ran to its end).
 * @param {Run} run
 */
async function stopRun(run) {
  if (run.stopping) return;
  run.stopping = true;
  if (run.conversationId === current.id) current = withStopPressed(current, run.channel) ?? current;
  store.update(run.conversationId, (stored) => withStopPressed(stored, run.channel), { quiet: true });
  if (run.unsent && run.neverReached) {
    // Its prompt never left the browser: nothing to tell the server (Stop waited for the
    // network to tell it, with the composer on Stop meanwhile: a review).
    updateComposer();
    run.subscription.stop('cancelled', '');
    return;
  }
  run.subscription.wantStop();
  updateComposer();
  // Said at once: a server that does not answer takes 8 s (nginx) to fail the cancel, which was
  // 9 s of silence after Stop.
  run.notes.stop = 'Stopping…';
  showNotes(run);
  try {
    await run.accepted;
  } catch {
    // refused: it is over already
  }
  await stopAnswer(
    stopEdges(run, (message) => {
      run.notes.stop = message ? `${message}.` : '';
      showNotes(run);
    }),
  );
}

/**
 * What Stop needs to stop `run` (src/stopping.js); `say` shows what it is doing.
 * @param {Run} run
 * @param {(message: string) => void} say
 * @returns {import('./stopping.js').StopEdges}
 */
function stopEdges(run, say) {
  return {
    cancel: async () => {
      try {
        return await cancel(run.channel);
      } catch (error) {
        // The session ended: once the new one is adopted, this answer has ended with it.
        if (forSession(error)) await renewSession();
        throw error;
      }
    },
    ended: () => !runs.has(run.channel),
    stopHere: (error) => run.subscription.stop('cancelled', error),
    check: () => run.subscription.check(),
    settle: () => run.subscription.settleStop(),
    say,
  };
}

// ---------------------------------------------------------------------------------------------
// The conversation on screen.

const store = new ConversationStore({
  changed: (id, deleted) => changedElsewhere(id, deleted),
  trouble: (problem) => showStatus('storage', storageNews(problem)),
});

let current = newConversation(newStreamId(), Date.now());
/** Whether `current` is in storage (a new chat is kept from its first prompt on). */
let kept = false;
/** @type {Map<AssistantTurn, AnswerView>} answers on screen that were arriving when kept */
const unfinished = new Map();
/** @type {Map<string, AnswerView>} the answers on screen, by channel */
const answerViews = new Map();
/** @type {Map<number, UserMessage>} the prompts on screen, by their place in the turns */
const promptViews = new Map();
/**
 * Edits the reader changed and did not send, of conversations no longer on screen, by their id:
 * opened again when their conversation is (see `keepEditDraft`).
 * @type {Map<string, EditDraft>}
 */
const editDrafts = new Map();
/**
 * The conversation on screen as another tab changed it while an edit was open here: shown once
 * the edit closes, or the edit is sent on top of it (see `changedElsewhere`).
 * @type {Conversation | null}
 */
let changedWhileEditing = null;

const list = new ConversationList(byId('conversation-list', HTMLUListElement), byId('no-conversations', HTMLElement), {
  rename: (id, title) => renameConversation(id, title),
  remove: (id) => deleteConversation(id),
  opened: () => {
    // On a phone the link goes with the drawer: the keyboard goes back to the drawer's toggle.
    const wasDrawer = drawerOpen();
    setSidebar(false);
    if (wasDrawer) sidebarToggle.focus();
  },
});

/** The answers that ended in conversations not on screen, until these are opened. */
const unseen = new UnseenAnswers();

let listing = Promise.resolve();
function refreshList() {
  listing = listing.then(async () => {
    const conversations = await store.list();
    const marks = unseen.marks([...runs.values()].map((run) => run.conversationId), current.id);
    // Only marks the list can show (a conversation deleted in another tab takes its mark along).
    const listed = new Set(conversations.map((c) => c.id));
    for (const id of [...marks.keys()]) if (!listed.has(id)) marks.delete(id);
    list.render(conversations, current.id, marks);
    // On a narrow screen the list is a drawer: its toggle shows that there is news in it, to
    // the eye (a dot) and in its name.
    const news = [...marks.values()].some((mark) => mark !== 'arriving');
    sidebarToggle.classList.toggle('has-news', news);
    sidebarToggle.setAttribute('aria-label', news ? 'Conversations, new answers' : 'Conversations');
  });
  return listing;
}

/** Keeps the conversation on screen in storage, and its id in the address. */
async function save() {
  kept = true;
  const saved = current;
  showAddress();
  await store.put(saved);
  await refreshList();
}

function showAddress() {
  const hash = kept ? `#${current.id}` : '';
  if (location.hash !== hash) history.replaceState(null, '', hash || location.pathname + location.search);
  document.title = kept ? `${current.title} · relaychat` : 'relaychat';
}

/** @param {Turn[]} turns */
function setTurns(turns) {
  current = withTurns(current, turns, Date.now());
}

/** Answers' actions, for the answer on `channel`. */
const answerActions = {
  /**
   * @param {string} text
   * @param {HTMLButtonElement} button
   */
  copy: (text, button) => copy(text, button),
  /**
   * @param {string} text
   * @param {HTMLButtonElement} button
   */
  copyCode: (text, button) => copy(text, button),
  regenerate: () => askLastAgain(),
};

/**
 * @param {string} text
 * @param {HTMLButtonElement} button
 */
async function copy(text, button) {
  if (!text) {
    // An empty code block, say: copying it would have emptied the clipboard.
    acknowledge(button, 'Nothing to copy');
    announcer.say('Nothing to copy');
    return;
  }
  try {
    await copyText(text);
  } catch (error) {
    announcer.say(copyFailed(error));
    acknowledge(button, 'Could not copy');
    return;
  }
  acknowledge(button, 'Copied');
  announcer.say('Copied');
}

/**
 * @param {number} index  the prompt's place in the conversation's turns
 * @returns {import('./view.js').UserActions}
 */
const userActions = (index) => ({
  copy: (button) => copy(/** @type {string} */ (/** @type {{text?: string}} */ (current.turns[index]).text), button),
  edit: (message) => startEdit(index, message),
  editClosed: () => editClosed(index),
});

/** Shows the conversation's turns; answers still arriving are followed again. */
function renderTurns() {
  view.clear();
  unfinished.clear();
  answerViews.clear();
  promptViews.clear();
  for (const run of runs.values()) run.view = null;
  current.turns.forEach((turn, index) => {
    if (turn.role === 'user') {
      promptViews.set(index, view.addUser(turn.text, userActions(index)));
      return;
    }
    const answerView = view.addAssistant(answerActions);
    answerViews.set(turn.channel, answerView);
    const run = runs.get(turn.channel);
    if (turn.reason) {
      answerView.show(turn.answer || '', turn.thinking || '');
      answerView.finish(turn.reason, turn.error, { restored: true });
    } else if (run) {
      run.view = answerView;
      answerView.showArrived(run.latest.text, run.latest.thinking);
      showNotes(run);
    } else {
      answerView.showArrived(turn.answer || '', turn.thinking || '');
      unfinished.set(turn, answerView);
    }
  });
  welcome.hidden = current.turns.length > 0;
  followUnfinished();
  offerLastActions();
  updateComposer();
  view.toLatest();
}

/** Whether the keyboard is in the conversation on screen, or nowhere. */
function keyboardInConversation() {
  const focused = document.activeElement;
  return !focused || focused === document.body || view.column.contains(focused);
}

/**
 * Shows a conversation.
 * @param {Conversation} conversation
 * @param {boolean} stored  whether it is in storage
 * @param {boolean} [keyboardHere]  whether the keyboard was in the conversation on screen (or
 *   nowhere), read before it goes: an edit opened again takes the keyboard only from there (a
 *   second Enter on the link or Back that showed it was its Save and send)
 */
function showConversation(conversation, stored, keyboardHere = keyboardInConversation()) {
  keepEditDraft();
  changedWhileEditing = null; // the conversation shown is as it is now
  current = conversation;
  kept = stored;
  unseen.seen(conversation.id);
  renderTurns();
  reopenEditDraft(keyboardHere);
  showAddress();
  refreshList();
}

/**
 * Keeps the edit open on screen, when the reader changed its text, for when its conversation is
 * shown again: New chat, a link, Back, Undo and a delete (here or in another tab) all replace the
 * conversation on screen, and the text was thrown away without a word. Kept in the tab, not in
 * storage: it is the reader's unfinished typing, not part of the conversation.
 */
function keepEditDraft() {
  const open = view.editing();
  const text = open?.changedText();
  const index = [...promptViews].find(([, message]) => message === open)?.[0];
  if (!open || typeof text !== 'string' || index === undefined) return;
  editDrafts.set(current.id, { index, prompt: open.text, text });
}

/**
 * Opens again the edit the reader left unsent in the conversation now on screen, with its text.
 * Its prompt changed meanwhile (in another tab), it goes to the message box.
 * @param {boolean} takeKeyboard  the keyboard goes with it: it was in the conversation (or
 *   nowhere), not on the list, Undo or the message box
 */
function reopenEditDraft(takeKeyboard) {
  const draft = takeEditDraft(current.id);
  if (!draft) return;
  const message = promptViews.get(draft.index);
  if (message && promptStillAt(current.turns, draft.index, draft.prompt)) {
    startEdit(draft.index, message, draft.text, takeKeyboard);
    const number = current.turns.slice(0, draft.index + 1).filter((turn) => turn.role === 'user').length;
    announcer.say(`Your unsent edit is open again, on your message ${number}: save or cancel it.`);
  } else {
    editToBox(draft.text);
    if (takeKeyboard) input.focus();
    announcer.say('Your unsent edit is in the message box: its message was changed in another tab.');
  }
}

/**
 * Puts an unsent edit that cannot be opened again where it was in the message box, after what
 * the box holds. It may come while the reader types there (a delete in another tab): what they
 * typed stays as it was, and so does the caret (or selection) in it.
 * @param {string} text
 */
function editToBox(text) {
  const { value, selectionStart, selectionEnd, selectionDirection } = input;
  input.value = boxWithEdit(value, text);
  if (input.value.startsWith(value)) input.setSelectionRange(selectionStart, selectionEnd, selectionDirection);
  resize();
  showLength();
}

/**
 * Takes out the unsent edit kept for a conversation that is deleted: it goes to the message box
 * (deleted in another tab), or with the conversation, for its Undo to bring back (deleted here).
 * @param {string} id
 * @returns {EditDraft | undefined}
 */
function takeEditDraft(id) {
  const draft = editDrafts.get(id);
  editDrafts.delete(id);
  return draft;
}

function newChat() {
  if (!kept && !current.turns.length) {
    input.focus();
    return;
  }
  showConversation(newConversation(newStreamId(), Date.now()), false);
  input.focus();
}

/** Opens the conversation the address names (`#<id>`), or a new chat. */
async function openFromAddress() {
  const id = addressedId(location.hash);
  if (id === current.id) return;
  const conversation = id ? await store.get(id) : null;
  if (conversation) showConversation(conversation, true);
  else showConversation(newConversation(newStreamId(), Date.now()), false);
}

/**
 * Another tab changed a conversation: the list follows, and so does the conversation on screen
 * unless something is going on in it here. One deleted there is deleted here too, its answer
 * still streaming included (kept going here, it was stored again with the next prompt).
 * @param {string} id
 * @param {boolean} deleted  the other tab deleted it
 */
async function changedElsewhere(id, deleted) {
  if (deleted) unseen.seen(id); // its mark goes with it
  refreshList();
  if (deleted && id !== current.id) {
    // An unsent edit left in it does not go with it, nor without a word: to the message box,
    // the keyboard staying where the reader has it.
    const draft = takeEditDraft(id);
    if (draft) {
      editToBox(draft.text);
      announcer.say('A conversation was deleted in another tab, with your unsent edit in it: the edit is in the message box.');
    }
  }
  if (id !== current.id && !runIn(id)) return;
  // Deleted when the other tab says so: a read that failed finds nothing too.
  const stored = deleted ? null : await store.get(id);
  if (!deleted && !stored) return;
  if (!stored) {
    stopAnswersIn(id);
    if (id !== current.id) return;
    const focusWasIn = view.column.contains(document.activeElement);
    showConversation(newConversation(newStreamId(), Date.now()), false);
    // An edit left unsent in it does not go with it: it goes to the message box.
    const draft = takeEditDraft(id);
    if (draft) editToBox(draft.text);
    const where = draft ? ' Your unsent edit is in the message box.' : '';
    announcer.say(`This conversation was deleted in another tab.${where}`);
    if (focusWasIn || document.activeElement === document.body) input.focus();
  } else if (id === current.id && JSON.stringify(stored) !== JSON.stringify(current)) {
    // An edit open here is not closed under the reader: the change waits for it to close (it was
    // skipped for good, and the next save wrote over it).
    if (view.editing()) changedWhileEditing = stored;
    // Nor is an answer streaming here redrawn: a new title is taken in (the next prompt sent
    // here stored the old one over it); turns changed there meanwhile are not (two tabs sending
    // in one conversation at once: the last one stored wins).
    else if (runIn(id)) retitle(stored);
    else showConversation(stored, true);
  }
}

/**
 * Takes in the title of the conversation on screen as stored (renamed in another tab).
 * @param {Conversation} stored
 */
function retitle(stored) {
  if (stored.title === current.title && stored.renamed === current.renamed) return;
  current = { ...current, title: stored.title, renamed: stored.renamed };
  showAddress();
}

/**
 * An edit closed unsent: a change another tab made to the conversation meanwhile is shown now,
 * the keyboard staying on the prompt's Edit.
 * @param {number} index  the edited prompt's place in the turns
 */
async function editClosed(index) {
  if (changedWhileEditing?.id !== current.id) return;
  changedWhileEditing = null;
  await changedElsewhere(current.id, false); // read again: it may have changed since
  if (document.activeElement === document.body) promptViews.get(index)?.editButton.focus();
}

/**
 * Stops the answers still streaming in a conversation that is deleted: nobody will read them.
 * @param {string} id
 * @returns {Run[]} the answers it stopped
 */
function stopAnswersIn(id) {
  const stopped = [...runs.values()].filter((run) => run.conversationId === id);
  for (const run of stopped) {
    run.conversationId = '';
    // As Stop does, sent again while it cannot get through (offline, the backend restarting):
    // sent once, the answer went on generating on the server (a real model's cost) until its
    // time limit.
    // After the reply to its execute: a cancel sent before it is accepted finds nothing to stop.
    void run.accepted.then(() => stopAnswer(stopEdges(run, () => {})));
  }
  return stopped;
}

/**
 * @param {string} id
 * @param {string} title
 */
async function renameConversation(id, title) {
  if (id === current.id) {
    current = renamed(current, title);
    showAddress();
  }
  await store.update(id, (stored) => renamed(stored, title));
  refreshList();
}

/**
 * Deletes a conversation, everywhere (its answers still streaming are stopped); for a while
 * Undo puts it back.
 * @param {string} id
 */
async function deleteConversation(id) {
  const stopped = stopAnswersIn(id);
  unseen.seen(id);
  const fromList = sidebar.contains(document.activeElement); // its Delete button, mostly
  const deleted = (await store.get(id)) ?? (id === current.id && kept ? current : null);
  await store.delete(id);
  if (id === current.id) showConversation(newConversation(newStreamId(), Date.now()), false);
  else refreshList();
  // An unsent edit in it goes with it, said so, and comes back with Undo (it was kept in the tab
  // for good, unreachable, without a word).
  const draft = takeEditDraft(id);
  const withDraft = draft ? ', with your unsent edit in it' : '';
  await listing;
  if (deleted) {
    toast.show('Conversation deleted', 'Undo', () => undoDelete(deleted, stopped, draft));
    announcer.say(`Conversation deleted${withDraft}. Undo restores it.`);
  } else {
    announcer.say(`Conversation deleted${withDraft}.`);
  }
  // The keyboard was on the conversation's own buttons, which went with it: it goes to Undo
  // (whose notice stays while it is there), else to New chat; not if the reader has moved on.
  const focused = document.activeElement;
  const lost = !focused || focused === document.body;
  if (deleted && (lost || (fromList && sidebar.contains(focused)))) toast.button.focus();
  else if (lost) (drawerOpen() ? closeSidebarButton : newChatButton).focus();
}

/**
 * Undo: the deleted conversation comes back as it was, in its place in the list, here and in
 * the other tabs, and opens. Its answers the delete stopped come back stopped.
 * @param {Conversation} deleted  as it was kept when it was deleted
 * @param {Run[]} stopped  its answers that the delete stopped
 * @param {EditDraft} [draft]  the unsent edit in it, opened again with it
 */
async function undoDelete(deleted, stopped, draft) {
  let restored = deleted;
  for (const run of stopped) restored = withEnding(restored, run.channel, endingOf(run)) ?? restored;
  await store.put(restored);
  if (draft) editDrafts.set(restored.id, draft);
  showConversation(restored, true, false); // its edit opened again does not take the keyboard from Undo
  await listing;
  announcer.say(`Conversation restored: ${restored.title}`);
  // The keyboard was on Undo, which went: it goes to the conversation instead.
  const focused = document.activeElement;
  if (!focused || focused === document.body || toast.root.contains(focused)) list.focusItem(restored.id);
}

/**
 * How an answer the delete stopped ended; one whose ending is still on its way ends as stopped
 * with what had arrived, as it would have.
 * @param {Run} run
 * @returns {Ending}
 */
const endingOf = (run) =>
  run.ending ?? { reason: 'cancelled', error: '', answer: run.latest.text, thinking: run.latest.thinking };

// ---------------------------------------------------------------------------------------------
// Asking.

/**
 * The last answer offers Regenerate, and Retry when it did not complete; Edit prompt instead of
 * both when the server refused its prompt as it was (see `lastActions`).
 */
function offerLastActions() {
  for (const answerView of answerViews.values()) answerView.withdrawRetry();
  const last = current.turns.at(-1);
  const answerView = last?.role === 'assistant' ? answerViews.get(last.channel) : undefined;
  if (!answerView) return;
  const offers = lastActions(current.turns);
  if (offers.regenerate) answerView.offerRegenerate();
  if (offers.retry) answerView.offerRetry(() => askLastAgain());
  if (offers.edit) answerView.offerEdit(() => editRefusedPrompt());
}

/**
 * Puts a prompt the server refused as it was back in the message box, to be edited and sent
 * again; not over something else the reader typed there meanwhile (see `promptBack`). Whether
 * it did.
 * @param {string} prompt
 */
function promptToBox(prompt) {
  const text = promptBack(input.value, prompt);
  if (text === null) return false;
  input.value = text;
  resize();
  showLength();
  input.setSelectionRange(text.length, text.length);
  return true;
}

/**
 * Edit prompt, on the last answer, whose prompt the server refused as it was: the prompt goes
 * back to the message box; or, when the reader has typed something else there, it is edited
 * where it is (as its own Edit does), so that neither text is lost.
 */
function editRefusedPrompt() {
  const index = current.turns.length - 2;
  const prompt = current.turns[index];
  if (prompt?.role !== 'user' || runIn(current.id)) return;
  if (promptToBox(prompt.text)) input.focus();
  else {
    const message = promptViews.get(index);
    if (message) startEdit(index, message);
  }
}

/** Regenerate, Retry: the last prompt is asked again, in place of its answer. */
function askLastAgain() {
  const again = askAgain(current.turns);
  const last = current.turns.at(-1);
  if (!again || !session.connection || runIn(current.id) || last?.role !== 'assistant') return;
  answerViews.get(last.channel)?.remove();
  answerViews.delete(last.channel);
  setTurns(again.turns);
  ask(again.prompt, { shown: true });
  input.focus();
}

/**
 * @param {number} index
 * @param {UserMessage} message
 * @param {string} [draft]  the reader's unsent edit, opened again (it was open, so it opens even
 *   while an answer streams)
 * @param {boolean} [focus]  the keyboard goes in it
 */
function startEdit(index, message, draft, focus = true) {
  if (runIn(current.id) && draft === undefined) return;
  message.startEdit((text) => {
    // Over the limit, the edit stays open (what follows it is kept): said on the box.
    const length = limits && lengthNotice(text, limits.maxTextChars);
    if (length?.over) return length.message;
    // An answer streaming (the edit was opened again meanwhile, or left open while a prompt went
    // from the message box): it waits for the answer, said on the box (it did nothing, without a
    // word).
    if (runIn(current.id)) return 'An answer is still coming; save and send this once it is done, or Stop it.';
    if (!session.connection) return '';
    // Another tab changed the conversation while the edit was open: the edit goes on top of that
    // change (it replaces only what follows its prompt), not over it. Unless that prompt is not
    // there as it was any more: the conversation is shown as it is now, the edit open again (or
    // in the message box), to be sent or not.
    const latest = changedWhileEditing?.id === current.id ? changedWhileEditing : null;
    changedWhileEditing = null;
    if (latest && !promptStillAt(latest.turns, index, message.text)) {
      announcer.say('This conversation was changed in another tab, so your edit was not sent.');
      showConversation(latest, true);
      // The keyboard was in the edit, which went: it goes where the edit did (see
      // `reopenEditDraft`), else to the message box.
      if (document.activeElement === document.body) input.focus();
      return '';
    }
    if (latest) current = latest;
    // A refused prompt put back in the message box goes from there once it is sent edited.
    const box = boxAfterEdit(input.value, current.turns, index);
    setTurns(editPrompt(current.turns, index, text).slice(0, -1));
    renderTurns();
    ask(text);
    if (box !== input.value) {
      input.value = box;
      resize();
      showLength();
    }
    input.focus();
    return '';
  }, draft, { focus });
}

/**
 * Sends a prompt and shows its answer as it streams.
 * @param {string} text
 * @param {{shown?: boolean}} [options]  `shown`: the prompt is already the last turn (asked again)
 */
async function ask(text, { shown = false } = {}) {
  if (session.renewing) await session.renewing.catch(() => {}); // a new session on its way: the prompt goes as its user
  if (!session.connection || runIn(current.id)) return;
  const { user } = session.connection;
  welcome.hidden = true;
  for (const answerView of answerViews.values()) answerView.withdrawRetry();
  const thinking = thinkingSwitch.checked;
  if (!shown) {
    setTurns([...current.turns, { role: 'user', text }]);
    promptViews.set(current.turns.length - 1, view.addUser(text, userActions(current.turns.length - 1)));
  }
  const earlier = current.turns.slice(0, -1);
  const channel = answerChannel(newStreamId(), user);
  /** @type {AssistantTurn} */
  const turn = { role: 'assistant', channel, reason: null };
  setTurns([...current.turns, turn]);
  const answerView = view.addAssistant(answerActions);
  answerViews.set(channel, answerView);
  const conversationId = current.id;
  const saving = save();
  if (!limits) await loadLimits(); // they could not be read at the start: maybe now
  const history = historyToSend(earlier);
  // Subscribe before asking: with `since` the channel is read from its start, so the first
  // publication cannot be missed whatever the order things arrive in.
  /** @type {(value: unknown) => void} */
  let settle = () => {};
  const accepted = new Promise((resolve) => {
    settle = resolve;
  });
  const run = follow(conversationId, turn, answerView, { accepted });
  updateComposer();
  // Sent without a network, the prompt cannot have got through (see `keepSending`).
  const sentOnline = browserOnline();
  try {
    await execute({ text, channel, thinking, history });
  } catch (error) {
    // A reply lost on the way may hide an accepted prompt: keep following the channel; if
    // nothing comes, the follower asks the backend, and the prompt ends as not sent if the
    // backend does not have it.
    if (forSession(error) && run) {
      await refusedForSession(run, error);
    } else if (refusedAsItIs(error)) {
      // Sent again as it is, it would be refused again: it goes back to be edited instead. The
      // limits are read again: the server's may have changed since the page read them (a
      // restart with lower ones), and the next send picks its history by them.
      run?.subscription.stop(REJECTED, messageOf(error));
      loadLimits();
      if (current.id === conversationId) {
        const focused = document.activeElement;
        if (promptToBox(text)) {
          if (focused === input || focused === document.body) input.focus();
          announcer.say('Your prompt is back in the message box, to edit and send again.');
        } else {
          announcer.say('The message box keeps what you typed; Edit prompt edits the refused prompt where it is.');
        }
      }
    } else if (!mayHaveBeenAccepted(error) && !refusedForNow(error)) {
      run?.subscription.stop('refused', messageOf(error));
    } else if (run) {
      const later = refusedForNow(error) ? /** @type {import('./api.js').ApiError} */ (error) : null;
      const send = () => execute({ text, channel, thinking, history });
      // Any reply is from the network, whatever the browser says of it.
      const reached = sentOnline || /** @type {{status?: unknown}} */ (error)?.status !== 0;
      const why = later ? { refusedFor: later.message, retryAfter: later.retryAfter } : { reached };
      unsent.keepSending(run, { thinking, send }, why);
    }
  } finally {
    settle(undefined);
  }
  await saving;
}

// ---------------------------------------------------------------------------------------------
// The composer: Send, or Stop while an answer streams; the text box stays open meanwhile.

function updateComposer() {
  const run = runIn(current.id);
  const answering = Boolean(run);
  if (sendButton.dataset.mode !== (answering ? 'stop' : 'send')) {
    sendButton.dataset.mode = answering ? 'stop' : 'send';
    setIconLabel(sendButton, answering ? 'stop' : 'send', answering ? 'Stop' : 'Send', 'label send-label');
  }
  // A Stop on its way takes no second press, but the button is not disabled: that dropped the
  // keyboard on it to the page's start. It keeps it, and is Send once the answer has ended.
  sendButton.disabled = !answering && !session.connection;
  sendButton.setAttribute('aria-disabled', String(Boolean(run?.stopping)));
  // No aria-busy: it tells assistive technology to hold off presenting the control, which the
  // reader must be able to press now (the answer's own turn is busy while it arrives).
  form.classList.toggle('answering', answering);
  for (const chip of chips) chip.disabled = !session.connection;
  view.setAnswering(answering);
  if (!answering && session.connection) waitLine.hidden = true;
}

/**
 * Enter while an answer streams (or with no session yet): the prompt stays in the box until it
 * can be sent, and says so.
 */
function sayThePromptWaits(message = 'An answer is still coming; send this once it is done, or Stop it.') {
  waitLine.textContent = message;
  waitLine.hidden = false;
  announcer.say(message);
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim()) return;
  if (!session.connection) {
    // It did nothing, without a word: the text stays, and the reader is told why.
    sayThePromptWaits('Not connected yet; your message stays here, to send once the page is connected.');
    return;
  }
  if (runIn(current.id)) {
    sayThePromptWaits();
    return;
  }
  if (showLength()) {
    announcer.say(lengthLine.textContent ?? '');
    return;
  }
  input.value = '';
  resize();
  showLength();
  ask(text);
});

/**
 * When the reader last pressed Stop. The button keeps the keyboard and becomes Send once the
 * answer has ended: a second press close behind (a double click, a repeated Enter) is the
 * Stop's, not a Send of what waits in the box.
 */
let stopPressedAt = -Infinity;

sendButton.addEventListener('click', (event) => {
  if (sendButton.dataset.mode === 'stop') {
    event.preventDefault();
    stopPressedAt = performance.now();
    stop();
  } else if (performance.now() - stopPressedAt < SECOND_PRESS_MS) {
    event.preventDefault();
  }
});

input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

function resize() {
  input.style.height = 'auto';
  input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
}
input.addEventListener('input', () => {
  resize();
  showLength();
});

for (const chip of chips) {
  /** @type {string} how the chip was last pressed (a pointer's type): see below */
  let pressedWith = '';
  chip.addEventListener('pointerdown', (event) => {
    pressedWith = event.pointerType;
  });
  chip.addEventListener('click', (event) => {
    const prompt = chip.dataset.prompt;
    if (!prompt || !session.connection || runIn(current.id)) return;
    ask(prompt);
    // The suggestions go with the welcome, and the keyboard would be on nothing (an outside-in
    // probe): it goes where it is after sending with Enter (`detail` is 0 for Enter and Space),
    // or a mouse click. Not after a touch or a pen: a phone would open its keyboard over the
    // answer.
    if (event.detail === 0 || pressedWith === 'mouse') input.focus();
  });
}

// Skip to message box: the keyboard goes to it (the address keeps naming the conversation: as a
// plain link it named "#prompt", which opened a new chat). While the drawer is open the link is
// inert, as the box behind it is (`holdPageBehindDrawer`).
skipToPrompt.addEventListener('click', (event) => {
  event.preventDefault();
  input.focus();
});

document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape' || event.defaultPrevented) return;
  if (drawerOpen()) {
    setSidebar(false);
    sidebarToggle.focus();
  } else if (runIn(current.id)) {
    event.preventDefault();
    stop();
  }
});

// ---------------------------------------------------------------------------------------------
// New chat, and the list of conversations (a drawer on narrow screens).

newChatButton.addEventListener('click', () => {
  newChat();
  setSidebar(false);
});

const narrowScreen = matchMedia('(max-width: 899px)');

/** Whether the list is open as a drawer over the page (on a narrow screen). */
const drawerOpen = () => sidebar.classList.contains('open') && narrowScreen.matches;

/** @param {boolean} open */
function setSidebar(open) {
  sidebar.classList.toggle('open', open);
  sidebarToggle.setAttribute('aria-expanded', String(open));
  holdPageBehindDrawer();
}

/**
 * While the drawer is open the page behind it is inert: neither the keyboard nor a screen
 * reader reaches it (a window widened meanwhile shows the list beside the page: it is not);
 * nor the skip link, which leads there.
 */
function holdPageBehindDrawer() {
  pageBehind.inert = drawerOpen();
  skipToPrompt.inert = drawerOpen();
}
// Widened, the list stands beside the page: the drawer is closed, so that narrowing the window
// again does not bring it back over the page with the keyboard lost behind it.
narrowScreen.addEventListener('change', () => {
  if (narrowScreen.matches) holdPageBehindDrawer();
  else setSidebar(false);
});

// Tab from the drawer's last control goes round to its first, and Shift+Tab back (past the inert
// page the keyboard would leave the document for the browser's own controls).
sidebar.addEventListener('keydown', (event) => {
  if (event.key !== 'Tab' || !drawerOpen()) return;
  const controls = tabbableIn(sidebar);
  const [first, last] = [controls[0], controls.at(-1)];
  const goingRound = event.shiftKey ? document.activeElement === first : document.activeElement === last;
  if (!first || !last || !goingRound) return;
  event.preventDefault();
  (event.shiftKey ? last : first).focus();
});

for (const closer of [closeSidebarButton, byId('backdrop', HTMLElement)]) {
  closer.addEventListener('click', () => {
    setSidebar(false);
    sidebarToggle.focus();
  });
}
sidebarToggle.addEventListener('click', () => {
  const open = !sidebar.classList.contains('open');
  setSidebar(open);
  if (open) /** @type {HTMLElement | null} */ (sidebar.querySelector('.open[aria-current]') ?? sidebar.querySelector('a, button'))?.focus();
});

window.addEventListener('hashchange', () => openFromAddress());

/**
 * A conversation kept by an older version of the page (in sessionStorage, this tab only) moves
 * into the list.
 */
async function adoptOlderConversation() {
  const key = 'relaychat:conversation:v1';
  let turns;
  try {
    turns = JSON.parse(sessionStorage.getItem(key) || 'null');
    sessionStorage.removeItem(key);
  } catch {
    return;
  }
  const read = readConversation({ id: newStreamId(), turns: Array.isArray(turns) ? turns : [] });
  if (!read?.turns.length) return;
  const conversation = withTurns(newConversation(read.id, Date.now()), read.turns, Date.now());
  await store.put(conversation);
  history.replaceState(null, '', `#${conversation.id}`);
}

async function start() {
  updateComposer();
  const starting = session.start();
  await adoptOlderConversation();
  await openFromAddress();
  // Summaries an older page (in another tab) left behind its changes: the list, drawn from them,
  // is drawn again once they are in line.
  if (await store.reconcile()) {
    refreshList();
    followStoredUnfinished();
  }
  await starting;
}

start();
