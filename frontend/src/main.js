// @ts-check
// The chat page: wires the form, the connection and the conversation together.
import { Centrifuge } from 'centrifuge';

import { checkReady, execute, fetchConfig, fetchSnapshot, fetchToken, mayHaveBeenAccepted } from './api.js';
import { answerChannel, newStreamId, streamIdOf } from './channel.js';
import { chooseHistory } from './history.js';
import { loadTurns, saveTurns } from './store.js';
import { subscribeAnswer } from './subscription.js';
import { ConversationView } from './view.js';

/** @import { Session } from './api.js' */
/** @import { Limits } from './limits.js' */
/** @import { AssistantTurn, Turn } from './store.js' */
/** @import { AnswerSubscription } from './subscription.js' */
/** @import { AnswerView } from './view.js' */

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
const view = new ConversationView(byId('conversation', HTMLElement));
const turns = loadTurns();

/** @param {unknown} error */
const messageOf = (error) => (error instanceof Error ? error.message : String(error));

// The status line has two parts, each replaced only by news about itself: the connection's state
// and, when they could not be read, the server's limits.
const statusParts = { connection: '', limits: '' };

/**
 * @param {keyof typeof statusParts} part
 * @param {string} message  empty once there is nothing to say
 */
function showStatus(part, message) {
  statusParts[part] = message;
  const text = [statusParts.connection, statusParts.limits].filter(Boolean).join(' ');
  statusLine.textContent = text;
  statusLine.hidden = !text;
}

/** The server's limits (`GET /api/config`), or null while they could not be read. */
let limits = /** @type {Limits | null} */ (null);

/** Reads the server's limits and applies them to the composer; says so when it cannot. */
async function loadLimits() {
  try {
    limits = await fetchConfig();
  } catch (error) {
    showStatus(
      'limits',
      `Cannot read the server's limits (${messageOf(error)}), so prompts are sent without ` +
        'the earlier conversation.',
    );
    return;
  }
  input.maxLength = limits.maxTextChars;
  showStatus('limits', '');
}

/**
 * The earlier turns to send with a prompt. Without the server's limits the fallback is none at
 * all, which the server accepts whatever its limits are; the prompt's own length is then left
 * to the server, which explains a refusal.
 * @param {readonly Turn[]} earlier
 */
const historyToSend = (earlier) => (limits ? chooseHistory(earlier, limits) : []);

const websocketUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/connection/websocket`;

let wasConnected = false;

/**
 * Connects to the real-time server with the session's token; when that token expires,
 * centrifuge-js asks `getToken` for a fresh one.
 * @param {Session} session
 */
function connect(session) {
  const centrifuge = new Centrifuge(websocketUrl, {
    token: session.token,
    getToken: async () => (await fetchToken()).token,
  });
  centrifuge.on('connected', () => {
    wasConnected = true;
    showStatus('connection', '');
  });
  centrifuge.on('connecting', (ctx) => {
    if (wasConnected) {
      showStatus(
        'connection',
        `Connection lost (${ctx.reason}). Reconnecting; the answer will continue where it stopped.`,
      );
    }
  });
  centrifuge.on('error', (ctx) => {
    // Never connected: the real-time server is down, or it refuses this page's origin.
    if (!wasConnected && ctx.type === 'transport') explainRefusedConnection();
  });
  centrifuge.on('disconnected', (ctx) => {
    showStatus('connection', `Disconnected from the server: ${ctx.reason}. Reload the page to reconnect.`);
  });
  centrifuge.connect();
  return centrifuge;
}

let explaining = false;
async function explainRefusedConnection() {
  if (explaining || wasConnected) return;
  explaining = true;
  const ready = await checkReady();
  if (!wasConnected) {
    showStatus(
      'connection',
      ready.ok
        ? `The real-time server refuses connections from this page (${location.origin}). ` +
            'Answers cannot be shown until its address is allowed ' +
            '(CENTRIFUGO_CLIENT_ALLOWED_ORIGINS). Retrying…'
        : `The real-time server is not available (${ready.reason}). Retrying…`,
    );
  }
  explaining = false;
}

/** The connection and the user it is for, once the page has started. */
let connection = /** @type {{centrifuge: Centrifuge, user: string} | null} */ (null);

/**
 * @param {boolean} busy
 * @param {string} [label]
 */
function setBusy(busy, label = 'Send') {
  input.disabled = busy;
  sendButton.disabled = busy;
  sendButton.textContent = label;
  sendButton.setAttribute('aria-busy', String(busy));
  form.classList.toggle('busy', busy);
  if (!busy) input.focus();
}

/**
 * Shows the answer arriving on `channel` in `answerView` as it streams.
 * @param {Centrifuge} centrifuge
 * @param {string} channel
 * @param {AnswerView} answerView
 * @param {boolean} [restoring]  it was already running before this page loaded
 */
function showAnswer(centrifuge, channel, answerView, restoring = false) {
  return subscribeAnswer(centrifuge, channel, {
    show: (answer) => answerView.show(answer.text, answer.thinking),
    readSnapshot: () => fetchSnapshot(streamIdOf(channel)),
    restoring,
  });
}

/** The answer that offers Retry: only the newest one, and only while nothing newer was sent. */
let retryOffer = /** @type {AnswerView | null} */ (null);

/**
 * Offers Retry on an answer that did not complete, if it is the conversation's last turn.
 * @param {AssistantTurn} turn
 * @param {AnswerView} answerView
 */
function offerRetry(turn, answerView) {
  if (turn.reason === 'complete' || turns[turns.length - 1] !== turn) return;
  retryOffer?.withdrawRetry();
  retryOffer = answerView;
  answerView.offerRetry(() => {
    const user = turns[turns.length - 2];
    if (sendButton.disabled || turns[turns.length - 1] !== turn || user?.role !== 'user') return;
    turns.pop();
    answerView.remove();
    retryOffer = null;
    ask(user.text, { again: true });
  });
}

/**
 * Waits for the answer's outcome, keeps it with its turn (so that a reload shows it as it
 * ended) and shows it.
 * @param {AssistantTurn} turn
 * @param {AnswerView} answerView
 * @param {AnswerSubscription} subscription
 */
async function recordOutcome(turn, answerView, subscription) {
  const { reason, error } = await subscription.outcome;
  turn.reason = reason;
  turn.error = error;
  turn.answer = answerView.answerText;
  turn.thinking = answerView.thinking;
  saveTurns(turns);
  answerView.finish(reason, error);
  offerRetry(turn, answerView);
}

/**
 * Sends a prompt and shows its answer as it streams.
 * @param {string} text
 * @param {{again?: boolean}} [options]  `again`: the prompt is already the last turn (Retry)
 */
async function ask(text, { again = false } = {}) {
  if (!connection) return;
  const { centrifuge, user } = connection;
  welcome.hidden = true;
  retryOffer?.withdrawRetry();
  retryOffer = null;
  setBusy(true, 'Sending…');
  const thinking = thinkingSwitch.checked;
  if (!again) {
    turns.push({ role: 'user', text });
    view.addUser(text);
  }
  const earlier = turns.slice(0, -1);
  if (!limits) await loadLimits(); // they could not be read at the start: maybe now
  const history = historyToSend(earlier);

  const channel = answerChannel(newStreamId(), user);
  /** @type {AssistantTurn} */
  const turn = { role: 'assistant', channel, reason: null };
  turns.push(turn);
  saveTurns(turns);
  const answerView = view.addAssistant();
  // Subscribe before asking: with `since` the channel is read from its start, so the first
  // publication cannot be missed whatever the order things arrive in.
  const subscription = showAnswer(centrifuge, channel, answerView);
  try {
    await execute({ text, channel, thinking, history });
  } catch (error) {
    // A reply lost on the way may hide an accepted prompt: keep following the channel; if
    // nothing comes, the follower asks the backend and says that nobody answers.
    if (!mayHaveBeenAccepted(error)) subscription.stop('refused', messageOf(error));
  }
  setBusy(true, 'Answering…');
  await recordOutcome(turn, answerView, subscription);
  setBusy(false);
}

/**
 * Shows the stored conversation again.
 * @returns {[AssistantTurn, AnswerView][]} the answers that were still arriving
 */
function restore() {
  /** @type {[AssistantTurn, AnswerView][]} */
  const unfinished = [];
  for (const turn of turns) {
    if (turn.role === 'user') {
      view.addUser(turn.text);
      continue;
    }
    const answerView = view.addAssistant();
    if (turn.reason) {
      answerView.show(turn.answer || '', turn.thinking || '');
      answerView.finish(turn.reason, turn.error);
      offerRetry(turn, answerView);
    } else {
      unfinished.push([turn, answerView]);
    }
  }
  if (turns.length) welcome.hidden = true;
  return unfinished;
}

async function start() {
  setBusy(true, 'Connecting…');
  const [session] = await Promise.allSettled([fetchToken(), loadLimits()]);
  if (session.status === 'rejected') {
    showStatus(
      'connection',
      `Cannot start a session: ${messageOf(session.reason)}. Reload the page to try again.`,
    );
    return;
  }
  const unfinished = restore();
  const centrifuge = connect(session.value);
  connection = { centrifuge, user: session.value.user };
  for (const [turn, answerView] of unfinished) {
    setBusy(true, 'Answering…');
    await recordOutcome(turn, answerView, showAnswer(centrifuge, turn.channel, answerView, true));
  }
  setBusy(false);
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  const text = input.value;
  if (!text.trim() || sendButton.disabled) return;
  input.value = '';
  resize();
  ask(text);
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
input.addEventListener('input', resize);

for (const chip of /** @type {NodeListOf<HTMLButtonElement>} */ (document.querySelectorAll('.chip'))) {
  chip.addEventListener('click', () => {
    const prompt = chip.dataset.prompt;
    if (!prompt || sendButton.disabled) return;
    ask(prompt);
  });
}

start();
