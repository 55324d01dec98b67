// @ts-check
// A prompt that did not get through is sent again until it does (202), or the server says it
// had (409); another refusal, or news of the answer meanwhile, ends the resending.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RESEND_MAX_MS, RESEND_MS, sendAgain } from '../src/resend.js';

/**
 * @param {number} status
 */
const httpError = (status) => Object.assign(new Error(`HTTP ${status}`), { status });

/**
 * `sendAgain` with the replies from `replies` in turn (an Error is thrown instead), on a clock
 * that the waits (and each send, `sendMs`) move on.
 * @param {(unknown | Error)[]} replies
 * @param {{heardAfter?: number, retryAfter?: number | null, deadline?: number, sendMs?: number, endedElsewhereAfter?: number}} [options]
 *   news of the answer comes after this many waits; the first failure's Retry-After; when to
 *   stop trying (the clock starts at 0); how long each send takes; `goOn` says no after this
 *   many waits
 */
async function resend(
  replies,
  {
    heardAfter = Infinity,
    retryAfter = /** @type {number | null} */ (null),
    deadline = Infinity,
    sendMs = 0,
    endedElsewhereAfter = Infinity,
  } = {},
) {
  let sends = 0;
  let unsent = true;
  let throughs = 0;
  let clock = 0;
  /** @type {number[]} */
  const waits = [];
  /** @type {boolean[]} */
  const early = [];
  /** @type {unknown[]} */
  const refusedForNow = [];
  const ended = await sendAgain(
    {
      send: async () => {
        clock += sendMs;
        const reply = replies[sends++];
        if (reply instanceof Error) throw reply;
        return reply;
      },
      unsent: () => unsent,
      through: () => {
        throughs += 1;
        unsent = false;
      },
      wait: async (ms, options) => {
        waits.push(ms);
        early.push(options.early);
        clock += ms;
        if (waits.length >= heardAfter) unsent = false;
      },
      refusedForNow: (error) => refusedForNow.push(error),
      goOn: async () => waits.length < endedElsewhereAfter,
      now: () => clock,
    },
    { retryAfter, deadline },
  );
  return { sends, throughs, waits, ended, early, refusedForNow };
}

test('sent again, waiting longer each time, until it is taken', async () => {
  const offline = httpError(0);
  const result = await resend([offline, httpError(502), offline, offline, offline, { channel: 'c' }]);
  assert.equal(result.sends, 6);
  assert.equal(result.throughs, 1);
  assert.deepEqual(result.waits, [RESEND_MS, 2_000, 4_000, RESEND_MAX_MS, RESEND_MAX_MS, RESEND_MAX_MS]);
});

test('a 409 says the first one got through: nothing more is sent', async () => {
  const result = await resend([httpError(0), httpError(409)]);
  assert.deepEqual([result.sends, result.throughs], [2, 1]);
});

test('another refusal is left to the follower (it ends the answer as not sent)', async () => {
  for (const status of [401, 413, 422, 429, 503]) {
    const result = await resend([httpError(status)]);
    assert.deepEqual([result.sends, result.throughs], [1, 0], String(status));
  }
});

test('a refusal for now (503 with Retry-After) is sent again, not sooner than the server asked', async () => {
  const later = (/** @type {number} */ seconds) => Object.assign(httpError(503), { retryAfter: seconds });
  const result = await resend([later(5), httpError(0), { channel: 'c' }], { retryAfter: 5 });
  assert.deepEqual([result.sends, result.throughs], [3, 1]);
  // The first failure's 5 s, then the next one's 5 s, then the doubling alone again (4 s).
  assert.deepEqual(result.waits, [5_000, 5_000, 4_000]);
  // A 503 without it (Centrifugo cannot be reached) is another refusal, left to the follower.
  const plain = await resend([httpError(503)], { retryAfter: 5 });
  assert.deepEqual([plain.sends, plain.throughs], [1, 0]);
});

test('refused for now past its deadline, it ends with the last refusal', async () => {
  // Probe: a restart's drain outlasted the page's 15 s silence check, which took the prompt
  // for lost meanwhile; the resending now decides, within its own time.
  const later = (/** @type {number} */ seconds) => Object.assign(httpError(503), { retryAfter: seconds });
  const refusals = [later(5), later(5), later(5), later(5)];
  const result = await resend(refusals, { retryAfter: 5, deadline: 16_000 });
  assert.deepEqual(result.waits, [5_000, 5_000, 5_000]); // a fourth wait would pass 16 s
  assert.equal(result.ended, refusals[2]);
  assert.equal(result.throughs, 0);
  assert.deepEqual(result.early, [false, false, false]); // the server asked: no sooner
  assert.deepEqual(result.refusedForNow, refusals.slice(0, 3));
  // Nothing sent before the deadline: nothing to end with.
  assert.equal((await resend(refusals, { retryAfter: 30, deadline: 16_000 })).ended, undefined);
});

test('the deadline is kept by the clock, the sends counted too', async () => {
  // Review: adding up the waits alone, sends of up to 10 s each kept it going for 206 s.
  const later = Object.assign(httpError(503), { retryAfter: 5 });
  const result = await resend([later, later, later, later], { retryAfter: 5, deadline: 16_000, sendMs: 4_000 });
  assert.deepEqual(result.waits, [5_000, 5_000]); // 5 + 4 + 5 + 4 = 18 s: no third
});

test('lost on the way, then refused for now: said, and the server asked time is waited', async () => {
  const later = Object.assign(httpError(503), { retryAfter: 5 });
  const result = await resend([httpError(0), later, later, { channel: 'c' }]);
  assert.deepEqual([result.sends, result.throughs], [4, 1]);
  assert.deepEqual(result.waits, [RESEND_MS, 2_000, 5_000, RESEND_MAX_MS]);
  assert.deepEqual(result.early, [true, true, false, false]);
  assert.deepEqual(result.refusedForNow, [later, later]);
  const cut = await resend([httpError(0), later, later, later], { deadline: 12_000 });
  assert.equal(cut.ended, later);
  assert.equal(cut.sends, 3); // tries at 1, 3 and 8 s; one at 16 s would pass 12
});

test('it says what ended it: nothing once through, the refusal that was not for now', async () => {
  assert.equal((await resend([{ channel: 'c' }])).ended, undefined);
  assert.equal((await resend([httpError(409)])).ended, undefined);
  const refused = httpError(429);
  assert.equal((await resend([httpError(0), refused])).ended, refused);
});

test('news of the answer meanwhile ends the resending, nothing sent', async () => {
  const result = await resend([httpError(0), httpError(0)], { heardAfter: 2 });
  assert.deepEqual([result.sends, result.throughs], [1, 0]);
});

test('an error without a status (a page bug, say) is tried again, not taken for a refusal', async () => {
  const result = await resend([new Error('boom'), { channel: 'c' }]);
  assert.deepEqual([result.sends, result.throughs], [2, 1]);
});

test('ended elsewhere meanwhile (goOn says no): nothing more is sent, and nothing said', async () => {
  const result = await resend([httpError(0), httpError(0), { channel: 'c' }], { endedElsewhereAfter: 2 });
  assert.deepEqual([result.sends, result.throughs, result.ended], [1, 0, undefined]);
});
