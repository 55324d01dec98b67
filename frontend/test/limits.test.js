// @ts-check
// The limits the page takes from `GET /api/config`.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { countChars, lengthNotice, limitCrossing, readLimits } from '../src/limits.js';

test("the server's limits are used as it states them", () => {
  const body = { max_text_chars: 1234, max_history_turns: 6, max_history_chars: 999 };
  assert.deepEqual(readLimits(body), { maxTextChars: 1234, maxHistoryTurns: 6, maxHistoryChars: 999 });
});

test('a limit of 0 is a limit, not a missing one', () => {
  const body = { max_text_chars: 1, max_history_turns: 0, max_history_chars: 0 };
  assert.deepEqual(readLimits(body), { maxTextChars: 1, maxHistoryTurns: 0, maxHistoryChars: 0 });
});

test('a configuration the page cannot read is refused whole, never half used', () => {
  const good = { max_text_chars: 8000, max_history_turns: 20, max_history_chars: 32000 };
  const bad = [
    null,
    'limits',
    {},
    { ...good, max_text_chars: undefined },
    { ...good, max_history_turns: '20' },
    { ...good, max_history_chars: -1 },
    { ...good, max_text_chars: 1.5 },
  ];
  for (const body of bad) assert.throws(() => readLimits(body), /limits/, JSON.stringify(body));
});

test('characters are counted as the server counts them', () => {
  assert.equal(countChars(''), 0);
  assert.equal(countChars('héllo'), 5);
  assert.equal(countChars('🙂 ok'), 4);
});

test('the composer says nothing well under the limit, counts near it and refuses over it', () => {
  assert.deepEqual(lengthNotice('x'.repeat(89), 100), { over: false, message: '' });
  assert.deepEqual(lengthNotice('x'.repeat(90), 100), { over: false, message: '90 of 100 characters.' });
  assert.deepEqual(lengthNotice('x'.repeat(100), 100), { over: false, message: '100 of 100 characters.' });
  assert.deepEqual(lengthNotice('x'.repeat(9001), 8000), {
    over: true,
    message: '9,001 of 8,000 characters: shorten the prompt to send it.',
  });
  // Counted as the server counts: an emoji is one character (two UTF-16 units).
  assert.equal(lengthNotice('🙂'.repeat(100), 100).over, false);
});

test('crossing the limit while typing is said once each way, not at every keystroke', () => {
  // Probe: a prompt typed past the limit was said to be too long only at Enter.
  const limit = 8000;
  /** @type {string[]} */
  const said = [];
  let wasOver = false;
  for (const length of [7990, 7999, 8000, 8001, 8002, 8500, 8001, 8000, 7999, 8001]) {
    const { over } = lengthNotice('x'.repeat(length), limit);
    const news = limitCrossing(wasOver, over, limit);
    if (news) said.push(`${length}: ${news}`);
    wasOver = over;
  }
  assert.deepEqual(said, [
    '8001: Your message is over the 8,000-character limit; shorten it to send it.',
    '8000: Your message is within the 8,000-character limit again.',
    '8001: Your message is over the 8,000-character limit; shorten it to send it.',
  ]);
});
