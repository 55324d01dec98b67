// @ts-check
// The session and its connection (src/session.js), with a fake real-time client and fake
// timers: starting it backs off while it cannot; a new user's session is adopted once however
// many ask; the connection's news reaches the status line; a refused connection is explained.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CONNECTING_SAID_AFTER_MS, LiveSession, SESSION_RETRY_MAX_MS, SESSION_RETRY_MS } from '../src/session.js';

/** A stand-in for centrifuge-js's client: records what is asked of it, emits what a test says. */
class FakeClient {
  /** @param {string} token @param {() => Promise<string>} getToken */
  constructor(token, getToken) {
    this.token = token;
    this.getToken = getToken;
    /** @type {Map<string, (ctx: any) => void>} */
    this.handlers = new Map();
    /** @type {string[]} */
    this.calls = [];
  }
  /** @param {string} name @param {(ctx: any) => void} handler */
  on(name, handler) {
    this.handlers.set(name, handler);
    return this;
  }
  connect() {
    this.calls.push('connect');
  }
  disconnect() {
    this.calls.push('disconnect');
    this.emit('disconnected', { code: 0, reason: 'disconnect called' });
  }
  /** @param {string} name @param {any} [ctx] */
  emit(name, ctx = {}) {
    this.handlers.get(name)?.(ctx);
  }
}

/** A channel between tabs: what this tab posts, and a way to hear another's. */
class FakeNews {
  constructor() {
    /** @type {unknown[]} */
    this.posted = [];
    /** @type {((event: {data: unknown}) => void) | undefined} */
    this.listener = undefined;
  }
  /** @param {unknown} data */
  postMessage(data) {
    this.posted.push(data);
  }
  /** @param {string} _type @param {any} listener */
  addEventListener(_type, listener) {
    this.listener = listener;
  }
}

/**
 * A session whose server answers `POST /api/token` with `tokens` in turn (an Error is a failed
 * one), and whose every edge is recorded.
 * @param {(import('../src/api.js').Session | Error)[]} tokens
 */
function sessionWith(tokens, { ready = { ok: true, status: 200, reason: '' }, answers = 0 } = {}) {
  const line = /** @type {{text: string, retry?: () => void}} */ ({ text: '' });
  const record = {
    /** @type {FakeClient[]} */ clients: [],
    /** @type {string[]} */ said: [],
    /** @type {string[]} */ announced: [],
    /** @type {string[]} */ userChanged: [],
    started: 0,
    changed: 0,
    asked: 0,
    news: new FakeNews(),
    line,
  };
  const session = new LiveSession({
    connectTo: (token, getToken) => {
      const client = new FakeClient(token, getToken);
      record.clients.push(client);
      return /** @type {any} */ (client);
    },
    fetchToken: async () => {
      record.asked += 1;
      const next = tokens.length > 1 ? tokens.shift() : tokens[0];
      if (next instanceof Error) throw next;
      return /** @type {import('../src/api.js').Session} */ (next);
    },
    checkReady: async () => ready,
    prepare: async () => {},
    say: (text, retry) => {
      Object.assign(line, { text, retry });
      if (text) record.said.push(text);
    },
    shown: () => line.text,
    announce: (text) => record.announced.push(text),
    answersUnderWay: () => answers,
    userChanged: (why) => record.userChanged.push(why),
    started: () => {
      record.started += 1;
    },
    changed: () => {
      record.changed += 1;
    },
    origin: 'http://chat.test',
    news: record.news,
  });
  return { session, record };
}

const ALICE = { token: 'token-a', user: 'alice', expires_in: 600 };
const BOB = { token: 'token-b', user: 'bob', expires_in: 600 };

/** Lets the promises due run (the fake timers do not). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test('a session that cannot start is asked for again by itself, backing off, and Retry asks at once', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const down = new Error('the server cannot be reached; try again shortly');
  const { session, record } = sessionWith([down, down, down, down, down, down, ALICE]);
  await session.start();
  assert.equal(record.line.text, 'Session failed: cannot start a session (the server cannot be reached). The page keeps trying; Retry tries now.');
  assert.equal(record.line.retry, session.retry);
  /** Moves the clock on by `ms` and lets the try it started finish. */
  const after = async (/** @type {number} */ ms) => {
    t.mock.timers.tick(ms);
    await settle();
    return record.asked;
  };
  assert.equal(await after(SESSION_RETRY_MS - 1), 1);
  assert.equal(await after(1), 2);
  assert.equal(await after(2 * SESSION_RETRY_MS), 3, 'twice as long the second time');
  assert.equal(await after(4 * SESSION_RETRY_MS), 4);
  assert.equal(await after(8 * SESSION_RETRY_MS), 5);
  assert.equal(await after(SESSION_RETRY_MAX_MS - 1), 5, 'at most SESSION_RETRY_MAX_MS');
  assert.equal(await after(1), 6);
  assert.equal(record.started, 0);

  await session.retry(); // pressed: no waiting for the timer
  assert.equal(record.asked, 7);
  assert.equal(record.line.text, '');
  assert.deepEqual(session.connection, { centrifuge: record.clients[0], user: 'alice' });
  assert.deepEqual(record.clients[0].calls, ['connect']);
  assert.equal(record.clients[0].token, 'token-a');
  assert.equal(record.started, 1);
  assert.equal(await after(SESSION_RETRY_MAX_MS), 7, 'no timer left behind');
  await session.start();
  assert.equal(record.asked, 7, 'started once');
});

test('"Connecting…" is said only when starting takes a while', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  /** @type {(session: any) => void} */
  let answer = () => {};
  const { session, record } = sessionWith([ALICE]);
  session.edges.fetchToken = () => new Promise((resolve) => (answer = resolve));
  const starting = session.start();
  t.mock.timers.tick(CONNECTING_SAID_AFTER_MS - 1);
  assert.equal(record.line.text, '');
  t.mock.timers.tick(1);
  assert.equal(record.line.text, 'Connecting…');
  answer(ALICE);
  await starting;
  assert.equal(record.line.text, '');

  const quick = sessionWith([ALICE]);
  await quick.session.start();
  t.mock.timers.tick(CONNECTING_SAID_AFTER_MS);
  assert.deepEqual(quick.record.said, [], 'nothing said of a quick start');
});

test('a new user is adopted once however many ask at once, and the other tabs are told', async () => {
  const { session, record } = sessionWith([ALICE, BOB]);
  await session.start();
  const [alice] = record.clients;
  const asked = await Promise.all([session.current(), session.current(), session.renew()]);
  assert.equal(record.asked, 2, 'one POST /api/token for the three');
  assert.deepEqual(asked.slice(0, 2), [BOB, BOB]);
  assert.equal(asked[2], true);
  const [, bob] = record.clients;
  assert.equal(record.clients.length, 2, 'one new connection');
  assert.deepEqual(session.connection, { centrifuge: bob, user: 'bob' });
  assert.deepEqual(alice.calls, ['connect', 'disconnect']);
  assert.equal(record.line.text, '', "the old connection's going is no news");
  assert.deepEqual(record.userChanged, ['the session ended, and a new one has started']);
  assert.deepEqual(record.news.posted, ['bob']);
  assert.deepEqual(record.announced, ['Your session ended; a new one has started.']);
  assert.equal(record.changed, 1);

  alice.emit('connecting', { code: 1, reason: 'transport closed' });
  alice.emit('connected');
  assert.deepEqual(record.said, [], "the retired connection's news is old");
  await session.renew(); // bob again: nothing changes
  assert.equal(record.clients.length, 2);
  assert.equal(record.changed, 1);
});

test('an expired token is renewed through the session, which may be a new one', async () => {
  const { session, record } = sessionWith([ALICE, BOB]);
  await session.start();
  assert.equal(await record.clients[0].getToken(), 'token-b');
  assert.equal(session.connection?.user, 'bob');
});

test("another tab's news of a new user makes this one ask for the session; its own user's does not", async () => {
  const { session, record } = sessionWith([ALICE, BOB]);
  await session.start();
  record.news.listener?.({ data: 'alice' });
  await settle();
  assert.equal(record.asked, 1);
  record.news.listener?.({ data: 'bob' });
  await settle();
  assert.equal(record.asked, 2);
  assert.equal(session.connection?.user, 'bob');
});

test('a session that cannot be renewed says so, and Retry renews it', async () => {
  const { session, record } = sessionWith([ALICE, new Error('the server is busy; try again in a few seconds'), BOB]);
  await session.start();
  assert.equal(await session.renew(), false);
  assert.equal(record.line.text, 'Session failed: cannot start a session (the server is busy).');
  record.line.retry?.();
  await settle();
  assert.equal(session.connection?.user, 'bob');
});

test('a connection lost says whether answers will go on, and its return is said', async () => {
  const { session, record } = sessionWith([ALICE], { answers: 2 });
  await session.start();
  const [client] = record.clients;
  client.emit('connecting', { code: 1, reason: 'before connected' });
  assert.deepEqual(record.said, [], 'connecting the first time is not a connection lost');
  client.emit('connected');
  assert.deepEqual(record.announced, [], 'a first connection is not news');
  client.emit('connecting', { code: 1, reason: 'transport closed' });
  assert.equal(record.line.text, 'Connection lost. Reconnecting; the answers will continue where they stopped.');
  client.emit('connected');
  assert.equal(record.line.text, '');
  assert.deepEqual(record.announced, ['Reconnected.']);
  client.emit('disconnected', { code: 3500, reason: 'invalid token' });
  assert.equal(record.line.text, 'Disconnected from the server; Retry connects again.');
  record.line.retry?.();
  assert.deepEqual(client.calls, ['connect', 'connect']);
});

test('a connection refused while the backend is up is explained, and the operator told why', async (t) => {
  const warned = t.mock.method(console, 'warn', () => {});
  const { session, record } = sessionWith([ALICE]);
  await session.start();
  const [client] = record.clients;
  client.emit('error', { type: 'transport', error: { code: 2, message: 'transport closed' } });
  client.emit('error', { type: 'transport', error: { code: 2, message: 'transport closed' } });
  await settle();
  assert.match(record.line.text, /^Cannot connect to the server for live answers .*answers still come, in steps/);
  assert.equal(warned.mock.callCount(), 1, 'explained once at a time');
  assert.match(String(warned.mock.calls[0].arguments[0]), /from http:\/\/chat\.test .*CENTRIFUGO_CLIENT_ALLOWED_ORIGINS/);
  record.line.retry?.(); // connects again at once, without the disconnect being news
  assert.deepEqual(client.calls, ['connect', 'disconnect', 'connect']);
  assert.match(record.line.text, /^Cannot connect to the server for live answers/);

  client.emit('connected');
  assert.deepEqual(record.announced, ['Connected.']);
});

test('a connection refused while the backend is not ready says that', async (t) => {
  t.mock.method(console, 'info', () => {});
  const { session, record } = sessionWith([ALICE], { ready: { ok: false, status: 503, reason: 'Centrifugo is not ready' } });
  await session.start();
  record.clients[0].emit('error', { type: 'transport' });
  await settle();
  assert.equal(record.line.text, 'Cannot connect: the server is not ready yet; trying again…');
});
