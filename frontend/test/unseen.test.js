// @ts-check
// Answers not on screen: the list marks a conversation whose answer is arriving, and one whose
// answer ended while it was not on screen, until the reader opens it; the ending is announced once.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { REJECTED } from '../src/conversation.js';
import { MARK_WORDS, UnseenAnswers } from '../src/unseen.js';

test('an answer that ends in a conversation not on screen marks it, and is announced once', () => {
  const unseen = new UnseenAnswers();
  assert.equal(unseen.ended('a', 'Tables in Markdown', 'complete', 'b'), 'New answer in “Tables in Markdown”.');
  assert.deepEqual([...unseen.marks([], 'b')], [['a', 'answered']]);
  assert.equal(MARK_WORDS.answered, 'new answer');
  // Drawn again (another change in the list), it stays marked; nothing more is said of it.
  assert.deepEqual([...unseen.marks([], 'b')], [['a', 'answered']]);
});

test('stopped and failed answers are marked as such', () => {
  const unseen = new UnseenAnswers();
  assert.equal(unseen.ended('a', 'one', 'cancelled', 'x'), 'Answer stopped in “one”.');
  for (const reason of ['error', 'timeout', 'abandoned', 'lost', 'unknown']) {
    assert.equal(unseen.ended(reason, 'two', reason, 'x'), 'Answer failed in “two”.');
  }
  assert.equal(unseen.marks([], 'x').get('a'), 'stopped');
  assert.equal(unseen.marks([], 'x').get('error'), 'failed');
});

test('a prompt not accepted is marked and said as such, as its conversation says, not as a failed answer', () => {
  const unseen = new UnseenAnswers();
  // REJECTED (422, 413: Edit prompt), and refused otherwise (409, 429, a session that ended: Retry).
  assert.equal(unseen.ended('a', 'one', REJECTED, 'x'), 'Prompt not accepted in “one”.');
  assert.equal(unseen.ended('b', 'two', 'refused', 'x'), 'Prompt not accepted in “two”.');
  assert.deepEqual(Object.fromEntries(unseen.marks([], 'x')), { a: 'refused', b: 'refused' });
  assert.equal(MARK_WORDS.refused, 'prompt not accepted');
});

test('a title that ends a sentence of its own is said without a second full stop', () => {
  const unseen = new UnseenAnswers();
  const said = (/** @type {string} */ title) => unseen.ended('a', title, 'complete', 'x');
  assert.equal(said('Please explain how relaychat works.'), 'New answer in “Please explain how relaychat works.”');
  for (const title of ['Why?', 'Hello!', 'Wait…', 'מה שלומך?', 'كيف حالك؟', '你好吗？', 'Bonjour.']) {
    assert.equal(said(title), `New answer in “${title}”`);
  }
  for (const title of ['Tables in Markdown', 'Lists:', 'A (short) one', '“Quoted.”']) {
    assert.equal(said(title), `New answer in “${title}”.`);
  }
});

test('opening the conversation clears its mark', () => {
  const unseen = new UnseenAnswers();
  unseen.ended('a', 'one', 'complete', 'b');
  assert.equal(unseen.marks([], 'a').size, 0, 'never marked while on screen');
  unseen.seen('a');
  assert.equal(unseen.marks([], 'b').size, 0, 'and not once the reader left it again');
});

test('an answer ending in the conversation on screen marks nothing and says nothing here', () => {
  const unseen = new UnseenAnswers();
  assert.equal(unseen.ended('a', 'one', 'complete', 'a'), '');
  assert.equal(unseen.ended('', 'gone', 'cancelled', 'a'), '', 'its conversation was deleted');
  assert.equal(unseen.marks([], 'b').size, 0);
});

test('an answer still arriving in a conversation not on screen is marked as arriving', () => {
  const unseen = new UnseenAnswers();
  unseen.ended('old', 'one', 'complete', 'x');
  const marks = unseen.marks(['a', 'x', '', 'old'], 'x');
  assert.deepEqual(Object.fromEntries(marks), { a: 'arriving', old: 'arriving' });
  assert.equal(MARK_WORDS.arriving, 'answer arriving');
});
