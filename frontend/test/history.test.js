// @ts-check
// Which earlier turns go to the model with a new prompt.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { chooseHistory } from '../src/history.js';

/** @import { Limits } from '../src/limits.js' */
/** @import { Turn } from '../src/conversation.js' */

/** @type {Limits} */
const ROOMY = { maxTextChars: 8000, maxHistoryTurns: 20, maxHistoryChars: 32000 };

/**
 * A prompt and its answer as the page stores them.
 * @param {string} prompt
 * @param {string} answer
 * @param {string} [reason]
 * @returns {Turn[]}
 */
const exchange = (prompt, answer, reason = 'complete') => [
  { role: 'user', text: prompt },
  { role: 'assistant', channel: `stream:${prompt}0000000#u`, reason, answer },
];

/** @param {string[]} prompts */
const conversation = (...prompts) => prompts.flatMap((p) => exchange(p, `answer to ${p}`));

test('nothing is sent before the first answer', () => {
  assert.deepEqual(chooseHistory([], ROOMY), []);
});

test('earlier exchanges are sent oldest first, each prompt before its answer', () => {
  assert.deepEqual(chooseHistory(conversation('one', 'two'), ROOMY), [
    { role: 'user', content: 'one' },
    { role: 'assistant', content: 'answer to one' },
    { role: 'user', content: 'two' },
    { role: 'assistant', content: 'answer to two' },
  ]);
});

test('an answer that did not complete is left out with its prompt', () => {
  for (const reason of ['cancelled', 'error', 'timeout', 'lost', 'refused']) {
    const turns = [...exchange('one', 'half an ans', reason), ...exchange('two', 'done')];
    assert.deepEqual(chooseHistory(turns, ROOMY), [
      { role: 'user', content: 'two' },
      { role: 'assistant', content: 'done' },
    ], reason);
  }
});

test('an answer still arriving is not sent', () => {
  /** @type {Turn[]} */
  const turns = [
    ...exchange('one', 'first'),
    { role: 'user', text: 'two' },
    { role: 'assistant', channel: 'stream:abcdefgh#u', reason: null },
  ];
  assert.deepEqual(chooseHistory(turns, ROOMY), [
    { role: 'user', content: 'one' },
    { role: 'assistant', content: 'first' },
  ]);
});

test('at the turn limit the oldest exchanges are dropped, whole', () => {
  const turns = conversation('one', 'two', 'three');
  const sent = chooseHistory(turns, { ...ROOMY, maxHistoryTurns: 4 });
  assert.deepEqual(sent.map((t) => t.content), ['two', 'answer to two', 'three', 'answer to three']);
  // An odd limit never splits an exchange: its prompt is not sent without its answer.
  const odd = chooseHistory(turns, { ...ROOMY, maxHistoryTurns: 5 });
  assert.deepEqual(odd.map((t) => t.content), ['two', 'answer to two', 'three', 'answer to three']);
});

test('a turn limit of 0 sends nothing', () => {
  assert.deepEqual(chooseHistory(conversation('one'), { ...ROOMY, maxHistoryTurns: 0 }), []);
});

test('at the character limit the newest exchanges that fit are sent, exactly up to it', () => {
  const turns = [...exchange('aaaa', 'bbbbbb'), ...exchange('cc', 'ddd')]; // 10 and 5 characters
  const limited = (/** @type {number} */ chars) =>
    chooseHistory(turns, { ...ROOMY, maxHistoryChars: chars }).map((t) => t.content);
  assert.deepEqual(limited(15), ['aaaa', 'bbbbbb', 'cc', 'ddd']);
  assert.deepEqual(limited(14), ['cc', 'ddd']);
  assert.deepEqual(limited(5), ['cc', 'ddd']);
  assert.deepEqual(limited(4), []);
});

test('one exchange too long stops the history there: nothing older is sent past the gap', () => {
  const turns = [...exchange('old', 'short'), ...exchange('huge', 'x'.repeat(100)), ...exchange('new', 'ok')];
  const sent = chooseHistory(turns, { ...ROOMY, maxHistoryChars: 50 });
  assert.deepEqual(sent.map((t) => t.content), ['new', 'ok']);
});

test('characters are counted as the server counts them: an emoji is one', () => {
  const turns = exchange('🙂🙂', '🙂'); // 3 characters, 6 UTF-16 code units
  assert.equal(chooseHistory(turns, { ...ROOMY, maxHistoryChars: 3 }).length, 2);
  assert.equal(chooseHistory(turns, { ...ROOMY, maxHistoryChars: 2 }).length, 0);
});

test('the whole answer text is sent, whitespace and newlines kept', () => {
  const answer = '  Hello!\n\n```js\nx = 1\n```\n';
  assert.deepEqual(chooseHistory(exchange('hi', answer), ROOMY)[1], { role: 'assistant', content: answer });
});
