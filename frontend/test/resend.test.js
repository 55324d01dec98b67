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
 * `sendAgain` with the replies from `replies` in turn (an Error is thrown instead).
 * @param {(unknown | Error)[]} replies
 * @param {{heardAfter?: number, retryAfter?: number | null, forMs?: number}} [options]  news of the answer comes
 *   after this many waits; the first failure's Retry-After; how long it may try
 */
async function resend(
  replies,
  { heardAfter = Infinity, retryAfter = /** @type {number | null} */ (null), forMs = Infinity } = {},
) {
  let sends = 0;
  let unsent = true;
  let throughs = 0;
  /** @type {number[]} */
  const waits = [];
  const ended = await sendAgain({
    send: async () => {
      const reply = replies[sends++];
      if (reply instanceof Error) throw reply;
      return reply;
    },
    unsent: () => unsent,
    through: () => {
      throughs += 1;
      unsent = false;
    },
    wait: async (ms) => {
      waits.push(ms);
      if (waits.length >= heardAfter) unsent = false;
    },
  }, { retryAfter, forMs });
  return { sends, throughs, waits, ended };
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

test('refused for now for longer than it may wait, it ends with the last refusal', async () => {
  // Probe: a restart's drain outlasted the page's 15 s silence check, which took the prompt
  // for lost meanwhile; the resending now decides, within its own time.
  const later = (/** @type {number} */ seconds) => Object.assign(httpError(503), { retryAfter: seconds });
  const refusals = [later(5), later(5), later(5), later(5)];
  const result = await resend(refusals, { retryAfter: 5, forMs: 16_000 });
  assert.deepEqual(result.waits, [5_000, 5_000, 5_000]); // a fourth wait would pass 16 s
  assert.equal(result.ended, refusals[2]);
  assert.equal(result.throughs, 0);
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
