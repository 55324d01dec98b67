// The chat page: wires the form, the connection and the conversation together.
import { Centrifuge } from 'centrifuge';

import { checkReady, execute, fetchToken } from './api.js';
import { loadTurns, saveTurns } from './store.js';
import { followChannel } from './stream.js';
import { ConversationView } from './view.js';

const $ = (id) => document.getElementById(id);
const form = $('composer');
const input = $('prompt');
const sendButton = $('send');
const thinkingSwitch = $('show-thinking');
const statusLine = $('status');
const welcome = $('welcome');
const view = new ConversationView($('conversation'));
const turns = loadTurns();

let identity = null; // {user, token}: the token is used once, for the first connect

async function getToken() {
  if (identity && identity.token) {
    const { token } = identity;
    identity.token = null;
    return token;
  }
  const fresh = await fetchToken();
  identity = { user: fresh.user, token: null };
  return fresh.token;
}

const websocketUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/connection/websocket`;
const centrifuge = new Centrifuge(websocketUrl, { getToken });

function showStatus(message) {
  statusLine.textContent = message || '';
  statusLine.hidden = !message;
}

let wasConnected = false;
centrifuge.on('connected', () => {
  wasConnected = true;
  showStatus('');
});
centrifuge.on('connecting', (ctx) => {
  if (wasConnected) showStatus(`Connection lost (${ctx.reason}). Reconnecting; the answer will continue where it stopped.`);
});
centrifuge.on('error', (ctx) => {
  // Never connected: the real-time server is down, or it refuses this page's origin.
  if (!wasConnected && ctx.type === 'transport') explainRefusedConnection();
});
centrifuge.on('disconnected', (ctx) => {
  showStatus(`Disconnected from the server: ${ctx.reason}. Reload the page to reconnect.`);
});

let explaining = false;
async function explainRefusedConnection() {
  if (explaining || wasConnected) return;
  explaining = true;
  const ready = await checkReady();
  if (!wasConnected) {
    showStatus(
      ready.ok
        ? `The real-time server refuses connections from this page (${location.origin}). ` +
            'Answers cannot be shown until its address is allowed ' +
            '(CENTRIFUGO_CLIENT_ALLOWED_ORIGINS). Retrying…'
        : `The real-time server is not available (${ready.reason}). Retrying…`,
    );
  }
  explaining = false;
}

function setBusy(busy, label = 'Send') {
  input.disabled = busy;
  sendButton.disabled = busy;
  sendButton.textContent = label;
  sendButton.setAttribute('aria-busy', String(busy));
  form.classList.toggle('busy', busy);
  if (!busy) input.focus();
}

const newStreamId = () => crypto.randomUUID().replaceAll('-', '');

// The backend's bounds on `history` (MAX_HISTORY_TURNS, MAX_HISTORY_CHARS): the newest turns
// that fit are sent, so a long conversation keeps working instead of being refused.
const HISTORY_TURNS = 20;
const HISTORY_CHARS = 32000;

/** Earlier turns for the model, oldest first: answered prompts only, newest that fit. */
function historyBefore(count) {
  const pairs = [];
  const earlier = turns.slice(0, count);
  for (let i = 0; i + 1 < earlier.length; i += 1) {
    const [question, answer] = [earlier[i], earlier[i + 1]];
    if (question.role === 'user' && answer.role === 'assistant' && answer.reason === 'complete') {
      pairs.push([question, answer]);
      i += 1;
    }
  }
  const history = [];
  let chars = 0;
  for (const [question, answer] of pairs.reverse()) {
    const size = question.text.length + answer.answer.length;
    if (history.length + 2 > HISTORY_TURNS || chars + size > HISTORY_CHARS) break;
    history.unshift({ role: 'user', content: question.text }, { role: 'assistant', content: answer.answer });
    chars += size;
  }
  return history;
}

/** Streams the answer of `record`'s channel into `turn` until `done`; saves the outcome. */
async function follow(record, turn, following) {
  const done = await following.done;
  record.reason = done.reason;
  record.error = done.error || '';
  record.answer = turn.answerText;
  record.thinking = turn.thinking;
  saveTurns(turns);
  turn.finish(done.reason, done.error);
}

function listen(turn, channel) {
  return followChannel(centrifuge, channel, (text, phase) => {
    if (phase === 'thinking') turn.appendThinking(text);
    else turn.appendAnswer(text);
  });
}

async function ask(text) {
  welcome.hidden = true;
  setBusy(true, 'Sending…');
  const thinking = thinkingSwitch.checked;
  const history = historyBefore(turns.length);
  turns.push({ role: 'user', text });
  view.addUser(text);

  const channel = `stream:${newStreamId()}#${identity.user}`;
  const record = { role: 'assistant', channel, reason: null };
  turns.push(record);
  saveTurns(turns);
  const turn = view.addAssistant();
  // Subscribe before asking: with `since` the channel is read from its start, so the first
  // publication cannot be missed whatever the order things arrive in.
  const following = listen(turn, channel);
  try {
    await execute({ text, channel, thinking, history });
  } catch (error) {
    following.stop('refused', error.message);
  }
  setBusy(true, 'Answering…');
  await follow(record, turn, following);
  setBusy(false);
}

function restore() {
  const unfinished = [];
  for (const record of turns) {
    if (record.role === 'user') {
      view.addUser(record.text);
      continue;
    }
    const turn = view.addAssistant();
    if (record.reason) {
      if (record.thinking) turn.appendThinking(record.thinking);
      turn.appendAnswer(record.answer || '');
      turn.finish(record.reason, record.error);
    } else {
      unfinished.push([record, turn]);
    }
  }
  if (turns.length) welcome.hidden = true;
  return unfinished;
}

async function start() {
  setBusy(true, 'Connecting…');
  try {
    identity = await fetchToken();
  } catch (error) {
    showStatus(`Cannot start a session: ${error.message}. Reload the page to try again.`);
    return;
  }
  const unfinished = restore();
  centrifuge.connect();
  for (const [record, turn] of unfinished) {
    setBusy(true, 'Answering…');
    await follow(record, turn, listen(turn, record.channel));
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

for (const chip of document.querySelectorAll('.chip')) {
  chip.addEventListener('click', () => {
    if (sendButton.disabled) return;
    ask(chip.dataset.prompt);
  });
}

start();
