// @ts-check
// Following one answer's channel: the resume rule of docs/protocol.md, and what silence means.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { AnswerFollower, GATEWAY_TIMEOUTS_WAITED } from '../src/follower.js';

/** @import { Outcome } from '../src/publication.js' */
/** @import { StreamSnapshot } from '../src/follower.js' */

class HttpError extends Error {
  /**
   * @param {number} status
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * A follower whose snapshots come from `snapshots` in turn (an Error is thrown instead).
 * @param {(StreamSnapshot | Error)[]} snapshots
 */
function follow(snapshots = []) {
  /** @type {Outcome[]} */
  const ends = [];
  /** @type {string[]} */
  const shown = [];
  /** @type {string[]} what `unsure` was told */
  const unsure = [];
  let asked = 0;
  const follower = new AnswerFollower({
    readSnapshot: async () => {
      const next = snapshots[asked++];
      if (!next) throw new Error('no snapshot left in this test');
      if (next instanceof Error) throw next;
      return next;
    },
    show: (answer) => shown.push(answer.text),
    end: (outcome) => ends.push(outcome),
    unsure: (message) => unsure.push(message),
    silenceMs: 15_000,
  });
  return { follower, ends, shown, unsure, asked: () => asked };
}

/** Lets the follower's pending snapshot request settle. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/**
 * Moves the mocked clock on a second at a time, letting snapshot requests settle in between.
 * @param {import('node:test').TestContext} t
 * @param {number} seconds
 */
async function tickSeconds(t, seconds) {
  for (let second = 0; second < seconds; second += 1) {
    t.mock.timers.tick(1_000);
    await settle();
  }
}

/**
 * `count` silences go by (the mocked clock on 15 s each), letting the snapshot each one asks for
 * settle.
 * @param {import('node:test').TestContext} t
 * @param {number} count
 */
async function silences(t, count) {
  for (let silence = 0; silence < count; silence += 1) {
    t.mock.timers.tick(15_000);
    await settle();
  }
}

/**
 * As `tickSeconds`, until the answer ends (two minutes at most).
 * @param {import('node:test').TestContext} t
 * @param {Outcome[]} ends
 * @returns {Promise<number>} the milliseconds it took
 */
async function tickUntilEnded(t, ends) {
  let waited = 0;
  while (ends.length === 0 && waited < 120_000) {
    await tickSeconds(t, 1);
    waited += 1_000;
  }
  return waited;
}

/**
 * @param {number} seq
 * @param {string} text
 */
const chunk = (seq, text) => ({ text, done: false, seq });

test('a whole answer then its done ends complete, nothing asked of the backend', () => {
  const { follower, ends, shown, asked } = follow();
  follower.subscribed({ recovered: true, emptyHistory: true, restoring: false });
  follower.publication(chunk(1, 'Hello '));
  follower.publication(chunk(2, 'world'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 2 });
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
  assert.equal(shown.at(-1), 'Hello world');
  assert.equal(asked(), 0);
});

test('recovery failed: the snapshot is shown, then only the live chunks after it', async () => {
  const { follower, ends, shown } = follow([{ text: 'abc', thinking: '', seq: 3, done: null }]);
  follower.publication(chunk(1, 'a'));
  follower.subscribed({ recovered: false, emptyHistory: false, restoring: false });
  follower.publication(chunk(3, 'c')); // already in the snapshot
  follower.publication(chunk(4, 'd'));
  await settle();
  follower.publication({ text: '', done: true, reason: 'complete', seq: 4 });
  assert.equal(shown.at(-1), 'abcd');
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
});

test('a done that finds chunks missing ends only once the snapshot filled them', async () => {
  // After a restart, a channel read from its start holds only what came after it.
  const { follower, ends, shown } = follow([{ text: 'abcd', thinking: '', seq: 4, done: null }]);
  follower.subscribed({ recovered: true, emptyHistory: false, restoring: true });
  follower.publication(chunk(4, 'd'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 4 });
  assert.deepEqual(ends, [], 'not ended on a partial answer');
  await settle();
  assert.equal(shown.at(-1), 'abcd');
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
});

test('a restored answer whose channel is empty takes its end from the snapshot', async () => {
  const done = { reason: 'complete', error: '' };
  const { follower, ends, shown } = follow([{ text: 'all of it', thinking: '', seq: 9, done }]);
  follower.subscribed({ recovered: true, emptyHistory: true, restoring: true });
  await settle();
  assert.equal(shown.at(-1), 'all of it');
  assert.deepEqual(ends, [done]);
});

test('silence asks the backend; an answer still running is waited for', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends, asked } = follow([{ text: 'a', thinking: '', seq: 1, done: null }]);
  follower.subscribed({ recovered: true, emptyHistory: true, restoring: false });
  follower.publication(chunk(1, 'a'));
  t.mock.timers.tick(14_999);
  assert.equal(asked(), 0);
  t.mock.timers.tick(1);
  assert.equal(asked(), 1);
  await settle();
  assert.deepEqual(ends, []);
  follower.publication(chunk(2, 'b'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 2 });
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
});

test('silence, and the backend no longer knows the answer: nobody is answering', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends } = follow([new HttpError(404, 'no answer is known for this stream')]);
  follower.subscribed({ recovered: true, emptyHistory: true, restoring: false });
  follower.publication(chunk(1, 'a'));
  t.mock.timers.tick(15_000);
  await settle();
  // It does not claim that the server stopped: the answer may have ended and expired (a tab
  // reopened, a laptop woken, minutes later).
  assert.deepEqual(ends, [
    {
      reason: 'abandoned',
      error: 'the server no longer has it (it ended more than 2 minutes ago, or the server answering it stopped)',
    },
  ]);
});

test('silence, and the gateway cannot reach the backend: nobody is answering, and why, once', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const message = 'the server cannot be reached right now (it may be restarting); try again shortly';
  const { follower, ends } = follow([new HttpError(502, message)]);
  follower.subscribed({ recovered: true, emptyHistory: true, restoring: false });
  t.mock.timers.tick(15_000);
  await settle();
  assert.deepEqual(ends, [{ reason: 'abandoned', error: message }]); // not wrapped in the same words
});

test('silence, and a prompt that never got through: it ends as not sent, not as no longer had', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const notSent = Object.assign(new HttpError(404, 'the prompt could not be sent'), { unsent: true });
  const { follower, ends } = follow([notSent]);
  follower.subscribed({ recovered: true, emptyHistory: true, restoring: false });
  t.mock.timers.tick(15_000);
  await settle();
  assert.deepEqual(ends, [{ reason: 'error', error: 'the prompt could not be sent' }]);
});

test('a snapshot request that got no answer (status 0) keeps the answer, says so, and asks again', async (t) => {
  // Probe: one failed fetch (this browser offline, a dead network path) ended a running answer
  // as abandoned for good, though it said nothing about the answer.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends, shown, unsure, asked } = follow([
    new HttpError(0, 'the server cannot be reached'),
    new HttpError(0, 'the server did not answer within 10 s'),
    { text: 'abc', thinking: '', seq: 3, done: null },
  ]);
  follower.subscribed({ recovered: true, emptyHistory: true, restoring: false });
  follower.publication(chunk(1, 'a'));
  t.mock.timers.tick(15_000);
  await settle();
  assert.deepEqual(ends, []);
  assert.equal(shown.at(-1), 'a');
  assert.deepEqual(unsure, ['the server cannot be reached']);
  t.mock.timers.tick(15_000); // the next silence asks again
  await settle();
  assert.equal(asked(), 2);
  assert.deepEqual(unsure, ['the server cannot be reached', 'the server did not answer within 10 s']);
  t.mock.timers.tick(15_000);
  await settle();
  assert.equal(asked(), 3);
  assert.equal(shown.at(-1), 'abc');
  assert.equal(unsure.at(-1), ''); // news again: nothing to say
  follower.publication(chunk(4, 'd'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 4 });
  assert.equal(shown.at(-1), 'abcd');
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
});

test('a publication after a snapshot that got no answer clears what was said', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends, unsure } = follow([new HttpError(0, 'the server cannot be reached')]);
  follower.subscribed({ recovered: true, emptyHistory: true, restoring: false });
  t.mock.timers.tick(15_000);
  await settle();
  follower.publication(chunk(1, 'a')); // the network is back
  follower.publication({ text: '', done: true, reason: 'complete', seq: 1 });
  assert.deepEqual(unsure, ['the server cannot be reached', '']);
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
});

test('a done that lacks chunks while snapshots get no answer gives up after a minute, as partly lost', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const offline = 'the server cannot be reached';
  const { follower, ends, asked } = follow(Array.from({ length: 20 }, () => new HttpError(0, offline)));
  follower.publication(chunk(1, 'a'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 2 }); // chunk 2 missed
  await settle();
  assert.deepEqual(ends, []);
  const waited = await tickUntilEnded(t, ends);
  assert.equal(waited, 60_000);
  assert.equal(asked(), 8);
  assert.deepEqual(ends, [{ reason: 'lost', error: `part of it could not be recovered (${offline})` }]);
});

test('an answer whose subscription cannot connect is followed through the snapshot, after the same silence', async (t) => {
  // Probe: a proxy that drops WebSockets left a cursor for good (the silence stopped counting
  // while the subscription was connecting), though the server had the whole answer.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const done = { reason: 'complete', error: '' };
  const { follower, ends, shown, asked } = follow([
    { text: 'Hel', thinking: '', seq: 1, done: null },
    { text: 'Hello', thinking: '', seq: 2, done },
  ]);
  follower.paused(); // subscribing, and it never gets through
  t.mock.timers.tick(14_999);
  assert.equal(asked(), 0);
  t.mock.timers.tick(1);
  await settle();
  assert.equal(shown.at(-1), 'Hel');
  assert.deepEqual(ends, []);
  t.mock.timers.tick(15_000);
  await settle();
  assert.equal(asked(), 2);
  assert.equal(shown.at(-1), 'Hello');
  assert.deepEqual(ends, [done]);
});

test('a connection that dropped: the silence counts from the last news, and a gateway error is waited out', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const restarting = 'the server cannot be reached right now (it may be restarting); try again shortly';
  const { follower, ends, unsure, asked } = follow([
    new HttpError(502, restarting),
    { text: 'ab', thinking: '', seq: 2, done: null },
  ]);
  follower.subscribed({ recovered: true, emptyHistory: true, restoring: false });
  follower.publication(chunk(1, 'a'));
  t.mock.timers.tick(10_000);
  follower.paused(); // the connection dropped: the whole server restarting, say
  t.mock.timers.tick(5_000);
  await settle();
  assert.equal(asked(), 1);
  assert.deepEqual(ends, [], 'not ended while nothing can be reached');
  assert.deepEqual(unsure, [restarting]);
  follower.subscribed({ recovered: true, emptyHistory: false, restoring: false });
  follower.publication(chunk(2, 'b'));
  assert.equal(unsure.at(-1), '');
  follower.publication({ text: '', done: true, reason: 'complete', seq: 2 });
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
});

test('a stop from outside ends it once; later publications change nothing', () => {
  const { follower, ends } = follow();
  follower.stop({ reason: 'refused', error: 'too long' });
  follower.publication({ text: '', done: true, reason: 'complete' });
  assert.deepEqual(ends, [{ reason: 'refused', error: 'too long' }]);
});

test('a missing snapshot under a done that lacks chunks says part of it was lost', async () => {
  const { follower, ends } = follow([new HttpError(404, 'gone')]);
  follower.publication(chunk(2, 'b'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 2 });
  await settle();
  assert.equal(ends.length, 1);
  assert.equal(ends[0].reason, 'lost');
});

test('a 503 under a done that lacks chunks is asked again at the next silence, not taken for a loss', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends, asked } = follow([
    new HttpError(503, 'the streams registry is being rebuilt after a restart; try again in a few seconds'),
    { text: 'ab', thinking: '', seq: 2, done: { reason: 'complete', error: '' } },
  ]);
  follower.publication(chunk(2, 'b'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 2 });
  await settle();
  assert.deepEqual(ends, []);
  t.mock.timers.tick(15_000);
  await settle();
  assert.equal(asked(), 2);
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
});

test('a 503 from the snapshot (the registry unreachable) is asked again, not taken for an ending', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends, asked } = follow([
    new HttpError(503, 'the streams registry cannot be reached right now'),
    { text: 'a', thinking: '', seq: 1, done: null },
  ]);
  follower.subscribed({ recovered: true, emptyHistory: true, restoring: false });
  t.mock.timers.tick(15_000);
  await settle();
  assert.deepEqual(ends, []);
  t.mock.timers.tick(15_000);
  await settle();
  assert.equal(asked(), 2);
  assert.deepEqual(ends, []);
});

test('a snapshot that ended but cannot fill the gap ends the answer as lost, not as it says', async () => {
  const partial = 'part of this answer was lost when the streams registry restarted';
  const { follower, ends, shown } = follow([
    { text: '', thinking: '', seq: 0, done: { reason: 'error', error: partial } },
  ]);
  follower.publication(chunk(1, 'a'));
  follower.publication(chunk(5, 'e')); // chunks 2-4 were lost with the registry's record
  follower.publication({ text: '', done: true, reason: 'complete', seq: 5 });
  await settle();
  assert.equal(shown.at(-1), 'a');
  assert.deepEqual(ends, [{ reason: 'lost', error: `part of it could not be recovered (${partial})` }]);
});

test('a gap asks for the snapshot again later, not once per chunk, and keeps what it holds', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends, shown, asked } = follow([
    new HttpError(503, 'the streams registry is being rebuilt after a restart; try again in a few seconds'),
    { text: '', thinking: '', seq: 0, done: null }, // its record rebuilt: no gap filled yet
    { text: 'ab', thinking: '', seq: 2, done: null },
  ]);
  follower.publication(chunk(1, 'a'));
  for (const seq of [3, 4, 5]) follower.publication(chunk(seq, String.fromCharCode(96 + seq)));
  await settle();
  assert.equal(asked(), 1); // the 503: again in 2 s, not at each chunk
  t.mock.timers.tick(2_000);
  await settle();
  assert.equal(asked(), 2); // no gap filled: again in 4 s
  follower.publication(chunk(6, 'f'));
  await settle();
  assert.equal(asked(), 2);
  t.mock.timers.tick(4_000);
  await settle();
  assert.equal(asked(), 3);
  assert.equal(shown.at(-1), 'abcdef'); // every chunk held meanwhile, none lost
  assert.deepEqual(ends, []);
});

test('a done whose chunks the running snapshot lacks yet is asked again later', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends, asked } = follow([
    { text: 'a', thinking: '', seq: 1, done: null }, // the record not there yet
    { text: 'ab', thinking: '', seq: 2, done: { reason: 'complete', error: '' } },
  ]);
  follower.publication(chunk(1, 'a'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 2 }); // chunk 2 missed
  await settle();
  assert.equal(asked(), 1);
  assert.deepEqual(ends, []);
  t.mock.timers.tick(2_000);
  await settle();
  assert.equal(asked(), 2);
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
});

test('a done that lacks chunks while the snapshot keeps answering 503 ends as partly lost after a minute', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const unreachable = 'the streams registry cannot be reached right now';
  const { follower, ends, shown, asked } = follow(
    Array.from({ length: 20 }, () => new HttpError(503, unreachable)),
  );
  follower.publication(chunk(1, 'a'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 2 }); // chunk 2 missed
  await settle();
  const waited = await tickUntilEnded(t, ends);
  assert.equal(waited, 60_000); // 2, 4, 8, 15, 15, 15 s apart, then the last second
  assert.equal(asked(), 8);
  assert.equal(shown.at(-1), 'a');
  assert.deepEqual(ends, [{ reason: 'lost', error: `part of it could not be recovered (${unreachable})` }]);
});

test('an answer still running keeps asking through 503s: only a done waits for a bound', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends, asked } = follow(
    Array.from({ length: 20 }, () => new HttpError(503, 'the streams registry cannot be reached right now')),
  );
  follower.publication(chunk(1, 'a'));
  follower.publication(chunk(3, 'c')); // a gap, no done: the answer may well be running
  await settle();
  await tickSeconds(t, 150);
  assert.ok(asked() >= 10, `${asked()} snapshots asked`);
  assert.deepEqual(ends, []);
});

test('a done arriving while a retry waits is asked about at once and waits its minute only', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const unreachable = 'the streams registry cannot be reached right now';
  const { follower, ends, asked } = follow(Array.from({ length: 30 }, () => new HttpError(503, unreachable)));
  follower.publication(chunk(1, 'a'));
  follower.publication(chunk(3, 'c')); // a gap: 503s, retries 2, 4, 8, 15 s apart
  await settle();
  await tickSeconds(t, 20);
  const before = asked();
  follower.publication({ text: '', done: true, reason: 'complete', seq: 3 }); // mid-wait
  await settle();
  assert.equal(asked(), before + 1); // at once, not when the wait is over
  const waited = await tickUntilEnded(t, ends);
  assert.equal(waited, 60_000);
  assert.equal(ends[0].reason, 'lost');
});

test('chunks held while a snapshot answered 503 are shown when they follow on, and the done ends it', async (t) => {
  // Found in review: they stayed held, every later chunk counted as a gap, and the answer ended
  // as lost a minute after its done although every chunk had arrived.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends, shown, asked } = follow([
    new HttpError(503, 'the streams registry cannot be reached right now'),
  ]);
  for (const seq of [1, 2, 3]) follower.publication(chunk(seq, `c${seq} `));
  t.mock.timers.tick(15_000); // silence: the snapshot is asked
  assert.equal(asked(), 1);
  follower.publication(chunk(4, 'c4 ')); // held while it is awaited
  follower.publication(chunk(5, 'c5 '));
  await settle(); // the 503
  assert.equal(shown.at(-1), 'c1 c2 c3 c4 c5 ');
  follower.publication(chunk(6, 'c6'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 6 });
  await settle();
  assert.equal(shown.at(-1), 'c1 c2 c3 c4 c5 c6');
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
  assert.equal(asked(), 1); // nothing missing: nothing more asked
});

test('Stop finding nothing running: a snapshot with a done ends the answer as it ended', async () => {
  // Review: the answer had completed while its done was held up; it was kept as stopped, cut.
  const done = { reason: 'complete', error: '' };
  const { follower, ends, shown } = follow([{ text: 'the whole answer', thinking: '', seq: 3, done }]);
  follower.subscribed({ recovered: true, emptyHistory: false, restoring: false });
  follower.publication(chunk(1, 'the '));
  follower.settleStop();
  await settle();
  assert.equal(shown.at(-1), 'the whole answer');
  assert.deepEqual(ends, [done]);
});

test('Stop finding nothing running: nobody having the answer ends it as stopped', async () => {
  // Probe: after a backend restart this said "Nobody is answering" instead of "Stopped".
  const { follower, ends } = follow([new HttpError(404, 'no answer is known for this stream')]);
  follower.subscribed({ recovered: true, emptyHistory: false, restoring: false });
  follower.publication(chunk(1, 'the '));
  follower.settleStop();
  await settle();
  assert.deepEqual(ends, [{ reason: 'cancelled', error: '' }]);
});

test('a 504 while the subscription is live is waited out: the rest of the answer still comes', async (t) => {
  // Probe: a backend paused ~25 s had nginx answer the snapshot 504 after 8 s; the page ended
  // the answer as "Nobody is answering", and never showed the rest the backend then sent.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const message = 'the server took too long to answer; try again shortly';
  const { follower, ends, shown, unsure } = follow([new HttpError(504, message)]);
  follower.subscribed({ recovered: true, emptyHistory: false, restoring: false });
  follower.publication(chunk(1, 'the '));
  await silences(t, 1);
  assert.deepEqual(ends, []);
  assert.deepEqual(unsure, [message]);
  follower.publication(chunk(2, 'whole answer'));
  follower.publication({ text: '', done: true, reason: 'complete', seq: 2 });
  await settle();
  assert.equal(shown.at(-1), 'the whole answer');
  assert.deepEqual(ends, [{ reason: 'complete', error: '' }]);
});

test('Stop pressed, then a snapshot learns first that nobody has the answer: it ends as stopped', async (t) => {
  // Probe: Stop while the backend hung, then the backend restarted: the silence's snapshot got
  // the 404 before the cancel's retry did, and the answer ended as "Nobody is answering".
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const { follower, ends } = follow([new HttpError(404, 'no answer is known for this stream')]);
  follower.subscribed({ recovered: true, emptyHistory: false, restoring: false });
  follower.publication(chunk(1, 'the '));
  follower.wantStop(); // the cancel is still being retried
  await silences(t, 1);
  assert.deepEqual(ends, [{ reason: 'cancelled', error: '' }]);
});

test('504s in a row are waited out for about two minutes, then nobody is answering', async (t) => {
  // Review: a backend hung for good behind a live subscription kept the answer arriving for ever.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const message = 'the server took too long to answer; try again shortly';
  const timeouts = Array.from({ length: GATEWAY_TIMEOUTS_WAITED }, () => new HttpError(504, message));
  const { follower, ends, asked } = follow(timeouts);
  follower.subscribed({ recovered: true, emptyHistory: false, restoring: false });
  follower.publication(chunk(1, 'the '));
  await silences(t, GATEWAY_TIMEOUTS_WAITED - 1);
  assert.deepEqual(ends, []);
  await silences(t, 1);
  assert.equal(asked(), GATEWAY_TIMEOUTS_WAITED);
  assert.deepEqual(ends, [{ reason: 'abandoned', error: message }]);
});

test('news between 504s starts their count again', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const timeout = () => new HttpError(504, 'the server took too long to answer; try again shortly');
  const half = Math.ceil(GATEWAY_TIMEOUTS_WAITED / 2);
  const { follower, ends } = follow(Array.from({ length: 2 * half }, timeout));
  follower.subscribed({ recovered: true, emptyHistory: false, restoring: false });
  follower.publication(chunk(1, 'a'));
  await silences(t, half);
  follower.publication(chunk(2, 'b')); // the backend is back a moment
  await silences(t, half);
  assert.deepEqual(ends, []);
});
