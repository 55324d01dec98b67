// @ts-check
// Stop: the cancel is sent until the server hears it (or a minute passed); a 404 asks the backend
// how the answer ended (stopped if nobody has it); a `done` late after an accepted cancel is
// asked for through the snapshot.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CANCEL_GIVE_UP_MS, CANCEL_RETRY_MAX_MS, DONE_AFTER_CANCEL_MS, stopAnswer } from '../src/stopping.js';

/**
 * @param {number} status
 * @param {string} message
 */
const httpError = (status, message) => Object.assign(new Error(message), { status });

/**
 * Stop, with the cancel's replies from `replies` in turn (an Error is thrown instead) and a clock
 * that moves only when Stop sleeps, or as `cancelMs` says each cancel takes.
 * @param {(unknown | Error)[]} replies
 * @param {{cancelMs?: number, doneAfterMs?: number, offlineUntil?: number}} [options]
 *   `doneAfterMs`: the `done` arrives this long after the cancel that got through, or that was
 *   answered 404; `offlineUntil`: the browser has no network until then, by the clock
 */
async function stopWith(replies, { cancelMs = 0, doneAfterMs = Infinity, offlineUntil = 0 } = {}) {
  let clock = 0;
  let cancels = 0;
  let doneAt = Infinity;
  /** @type {string[]} */
  const said = [];
  /** @type {string[]} */
  const stoppedHere = [];
  /** @type {number[]} */
  const sleeps = [];
  let checks = 0;
  let settles = 0;
  const ended = () => stoppedHere.length > 0 || clock >= doneAt;
  await stopAnswer({
    cancel: async () => {
      const reply = replies[cancels++];
      clock += cancelMs;
      if (!(reply instanceof Error) || /** @type {{status?: number}} */ (reply).status === 404) {
        doneAt = clock + doneAfterMs;
      }
      if (reply instanceof Error) throw reply;
      return reply;
    },
    ended,
    stopHere: (error) => stoppedHere.push(error),
    check: () => {
      checks += 1;
    },
    settle: () => {
      settles += 1;
    },
    say: (message) => said.push(message),
    sleep: async (ms) => {
      sleeps.push(ms);
      clock += ms;
    },
    now: () => clock,
    online: () => clock >= offlineUntil,
  });
  return { cancels, said, stoppedHere, sleeps, checks: () => checks, settles: () => settles, clock: () => clock };
}

const offline = httpError(0, 'the server cannot be reached');

test('a cancel that cannot reach the server is sent again, saying so, until it gets through', async () => {
  // Probe: Stop while offline (or with Redis paused: 503) told the server nothing, ever; the
  // answer was generated to its end on the server.
  const stop = await stopWith([offline, httpError(503, 'the streams registry cannot be reached'), offline, { channel: 'c' }], {
    doneAfterMs: 5,
  });
  assert.equal(stop.cancels, 4);
  assert.deepEqual(stop.sleeps.slice(0, 3), [1_000, 2_000, 4_000]); // backing off
  assert.deepEqual(stop.said, [
    'Stopping… the server has not heard yet (the server cannot be reached); the page keeps telling it',
    'Stopping… the server has not heard yet (the streams registry cannot be reached); the page keeps telling it',
    'Stopping… the server has not heard yet (the server cannot be reached); the page keeps telling it',
    '',
  ]);
  assert.deepEqual(stop.stoppedHere, []); // its done (cancelled) ends it, as usual
  assert.equal(stop.checks(), 0);
});

test('a cancel that cannot get through for a minute stops the answer here, saying the server was not told', async () => {
  const stop = await stopWith(Array.from({ length: 100 }, () => httpError(0, 'the server did not answer within 10 s')), {
    cancelMs: 10_000, // each one waits its timeout
  });
  assert.ok(stop.clock() >= CANCEL_GIVE_UP_MS && stop.clock() < CANCEL_GIVE_UP_MS + 20_000, `${stop.clock()}`);
  assert.ok(stop.cancels >= 4 && stop.cancels <= 6, `${stop.cancels} cancels`);
  assert.deepEqual(stop.stoppedHere, ['the server could not be told (the server did not answer within 10 s)']);
  assert.equal(stop.said.at(-1), '');
});

test('offline, Stop waits for the network rather than stop the answer here; the minute counts once back', async () => {
  // probe83 F6: a minute offline stopped it here, cut short, while the server completed it.
  const stop = await stopWith([...Array.from({ length: 30 }, () => offline), httpError(404, 'nothing runs there')], {
    offlineUntil: 180_000,
  });
  assert.deepEqual(stop.stoppedHere, []);
  assert.equal(stop.settles(), 1); // the backend says how it ended: completed, or stopped
  assert.ok(stop.clock() >= 180_000, `${stop.clock()}`);
});

test('back online, a server that still cannot be told gets its minute, then it stops here', async () => {
  const stop = await stopWith(Array.from({ length: 100 }, () => offline), { offlineUntil: 100_000 });
  // The last try offline was at most a backoff (8 s) before the network came back.
  const back = 100_000 - CANCEL_RETRY_MAX_MS;
  assert.ok(stop.clock() >= back + CANCEL_GIVE_UP_MS && stop.clock() < 100_000 + CANCEL_GIVE_UP_MS + 10_000, `${stop.clock()}`);
  assert.deepEqual(stop.stoppedHere, ['the server could not be told (the server cannot be reached)']);
});

test('a reply while the browser says it is offline counts as a network: the minute runs', async () => {
  // A review: a browser may say it is offline while it reaches a server on this machine.
  const stop = await stopWith(Array.from({ length: 100 }, () => httpError(502, 'the server cannot be reached right now')), {
    offlineUntil: Infinity,
  });
  assert.ok(stop.clock() >= CANCEL_GIVE_UP_MS && stop.clock() < CANCEL_GIVE_UP_MS + 10_000, `${stop.clock()}`);
  assert.equal(stop.stoppedHere.length, 1);
});

test('a 404 (no process runs the answer) asks the backend how it ended, at once', async () => {
  // Probe: read as "its done is on its way", Stop stayed disabled and 12 s later the answer
  // ended as "Nobody is answering" instead of "Stopped". Review: stopped here without asking
  // (after 2 s), an answer that had completed while its `done` was held up (the stall that
  // made the reader press Stop) was kept as stopped with 8 of its 806 characters.
  const stop = await stopWith([httpError(404, 'nothing is running there')]);
  assert.equal(stop.cancels, 1);
  assert.equal(stop.settles(), 1); // the snapshot says how it ended; nobody has it: stopped
  assert.deepEqual(stop.stoppedHere, []);
  assert.deepEqual(stop.sleeps, []);
});

test('a refusal is not sent again: the answer stops here, saying why', async () => {
  const stop = await stopWith([httpError(422, 'the channel is malformed')]);
  assert.equal(stop.cancels, 1);
  assert.deepEqual(stop.stoppedHere, ['the server could not be told (the channel is malformed)']);
});

test('an accepted cancel whose done is late asks the snapshot, which carries it', async () => {
  // Probe: with Centrifugo stalled the server had stopped at once, but the page waited 13 s for
  // a done that could not be delivered.
  const stop = await stopWith([{ channel: 'c' }]);
  assert.deepEqual(stop.sleeps, [DONE_AFTER_CANCEL_MS]);
  assert.equal(stop.checks(), 1);
  assert.deepEqual(stop.stoppedHere, []);
  assert.ok(DONE_AFTER_CANCEL_MS <= 3_000);
});

test('an accepted cancel whose done comes in time asks nothing more', async () => {
  const stop = await stopWith([{ channel: 'c' }], { doneAfterMs: 5 });
  assert.equal(stop.checks(), 0);
});

test('an answer that ended while the cancel was retried is left as it ended', async () => {
  let ended = false;
  let cancels = 0;
  /** @type {string[]} */
  const stoppedHere = [];
  await stopAnswer({
    cancel: async () => {
      cancels += 1;
      throw offline;
    },
    ended: () => ended,
    stopHere: (error) => stoppedHere.push(error),
    check: () => {},
    settle: () => {},
    say: () => {},
    sleep: async () => {
      ended = true; // its done came meanwhile (the network came back for the real-time server)
    },
  });
  assert.equal(cancels, 1);
  assert.deepEqual(stoppedHere, []);
});

test('a cancel that failed offline is sent again as soon as the browser is back online', async () => {
  // An outside-in probe: Stop pressed offline waited out its timer (up to 8 s) once the network
  // was back, while the answer streamed on under "Stopping…" and ended on the server.
  const browser = new EventTarget();
  const global = /** @type {Record<string, unknown>} */ (globalThis);
  global.addEventListener = browser.addEventListener.bind(browser);
  global.removeEventListener = browser.removeEventListener.bind(browser);
  try {
    let cancels = 0;
    let ended = false;
    /** @type {() => void} */
    let sentAgain = () => {};
    const second = new Promise((resolve) => {
      sentAgain = () => resolve(undefined);
    });
    const stopping = stopAnswer({
      cancel: async () => {
        cancels += 1;
        if (cancels === 1) throw httpError(0, 'the server cannot be reached');
        ended = true; // its `done` came
        sentAgain();
      },
      ended: () => ended,
      stopHere: () => assert.fail('not stopped here'),
      check: () => {},
      settle: () => {},
      say: () => {},
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(cancels, 1);
    browser.dispatchEvent(new Event('online'));
    const late = new Promise((resolve) => setTimeout(() => resolve('late'), 500)); // the timer: 1 s
    assert.equal(await Promise.race([second.then(() => 'at once'), late]), 'at once');
    browser.dispatchEvent(new Event('online')); // the wait for the `done` after it, cut short too
    await stopping;
  } finally {
    delete global.addEventListener;
    delete global.removeEventListener;
  }
});
