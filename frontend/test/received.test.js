// @ts-check
// The answer as received: chunks in seq order, each once, gaps filled from a snapshot.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ReceivedAnswer, readSnapshot } from '../src/received.js';

/**
 * @param {number} seq
 * @param {string} text
 * @returns {{text: string, phase: 'answer', seq: number}}
 */
const chunk = (seq, text) => ({ text, phase: 'answer', seq });

test('chunks in order are shown in order', () => {
  const answer = new ReceivedAnswer();
  assert.equal(answer.receive(chunk(1, 'a ')), 'shown');
  assert.equal(answer.receive(chunk(2, 'b')), 'shown');
  assert.equal(answer.text, 'a b');
  assert.equal(answer.seq, 2);
});

test('a chunk delivered twice is shown once', () => {
  const answer = new ReceivedAnswer();
  answer.receive(chunk(1, 'a'));
  assert.equal(answer.receive(chunk(1, 'a')), 'duplicate');
  assert.equal(answer.text, 'a');
});

test('thinking chunks go to the thinking, not the answer', () => {
  const answer = new ReceivedAnswer();
  answer.receive({ text: 'hmm', phase: 'thinking', seq: 1 });
  answer.receive(chunk(2, 'yes'));
  assert.deepEqual([answer.thinking, answer.text], ['hmm', 'yes']);
});

test('a gap holds the chunk after it until a snapshot fills the gap', () => {
  const answer = new ReceivedAnswer();
  answer.receive(chunk(1, 'a'));
  assert.equal(answer.receive(chunk(4, 'd')), 'gap');
  assert.equal(answer.text, 'a', 'nothing after a gap is shown before it is filled');
  answer.beginResume();
  assert.equal(answer.receive(chunk(5, 'e')), 'held');
  assert.equal(answer.resumeFrom({ text: 'abc', thinking: '', seq: 3 }), true);
  assert.equal(answer.text, 'abcde');
  assert.equal(answer.seq, 5);
});

test('live chunks the snapshot already holds are not shown twice', () => {
  const answer = new ReceivedAnswer();
  answer.beginResume();
  answer.receive(chunk(2, 'b'));
  answer.receive(chunk(3, 'c'));
  answer.receive(chunk(4, 'd'));
  answer.resumeFrom({ text: 'abc', thinking: '', seq: 3 });
  assert.equal(answer.text, 'abcd');
  assert.equal(answer.held.size, 0);
});

test('a snapshot older than what the page has changes nothing', () => {
  const answer = new ReceivedAnswer();
  answer.receive(chunk(1, 'a'));
  answer.receive(chunk(2, 'b'));
  answer.beginResume();
  assert.equal(answer.resumeFrom({ text: 'a', thinking: '', seq: 1 }), true);
  assert.equal(answer.text, 'ab');
});

test('a gap the snapshot cannot fill stays held, and is reported', () => {
  const answer = new ReceivedAnswer();
  answer.receive(chunk(5, 'e'));
  answer.beginResume();
  assert.equal(answer.resumeFrom({ text: 'ab', thinking: '', seq: 2 }), false);
  assert.equal(answer.text, 'ab');
  assert.equal(answer.resumeFrom({ text: 'abcd', thinking: '', seq: 4 }), true);
  assert.equal(answer.text, 'abcde');
});

test('whether a done finds every chunk here', () => {
  const answer = new ReceivedAnswer();
  answer.receive(chunk(1, 'a'));
  assert.equal(answer.hasAllUpTo(1), true);
  assert.equal(answer.hasAllUpTo(2), false);
  assert.equal(answer.hasAllUpTo(undefined), true, 'a server that does not number chunks');
  answer.beginResume();
  assert.equal(answer.hasAllUpTo(1), false, 'not while a snapshot is awaited');
});

test('unnumbered chunks are taken in arrival order', () => {
  const answer = new ReceivedAnswer();
  answer.receive({ text: 'a', phase: 'answer' });
  answer.receive({ text: 'b', phase: 'answer' });
  assert.equal(answer.text, 'ab');
});

test('a snapshot body is read, with or without its done', () => {
  assert.deepEqual(readSnapshot({ text: 'a', thinking: '', seq: 1, done: null }), {
    text: 'a',
    thinking: '',
    seq: 1,
    done: null,
  });
  assert.deepEqual(readSnapshot({ text: 'a', thinking: 't', seq: 2, done: { reason: 'timeout', error: 'slow' } }), {
    text: 'a',
    thinking: 't',
    seq: 2,
    done: { reason: 'timeout', error: 'slow' },
  });
});

test('a snapshot body the page cannot read is refused with a message', () => {
  for (const body of [null, {}, { text: 'a', thinking: '', seq: '1' }, { text: 1, thinking: '', seq: 1 }]) {
    assert.throws(() => readSnapshot(body), /cannot read/);
  }
});
