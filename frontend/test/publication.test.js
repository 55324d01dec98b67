// @ts-check
// What each publication on an answer's channel does to the answer on screen.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { readPublication } from '../src/publication.js';

test('a chunk adds its text to the answer', () => {
  assert.deepEqual(readPublication({ text: 'Hello ', done: false, seq: 1 }), {
    kind: 'chunk',
    text: 'Hello ',
    phase: 'answer',
    seq: 1,
  });
});

test('a thinking chunk adds its text to the thinking, not the answer', () => {
  assert.deepEqual(readPublication({ text: 'Let me see.', done: false, seq: 1, phase: 'thinking' }), {
    kind: 'chunk',
    text: 'Let me see.',
    phase: 'thinking',
    seq: 1,
  });
});

test('a chunk keeps its whitespace and newlines exactly', () => {
  const chunk = readPublication({ text: '\n\n  ```js\n', done: false });
  assert.equal(chunk.kind === 'chunk' && chunk.text, '\n\n  ```js\n');
});

test('done ends the answer with its reason and no message when it completed', () => {
  assert.deepEqual(readPublication({ text: '', done: true, reason: 'complete' }), {
    kind: 'done',
    outcome: { reason: 'complete', error: '' },
  });
});

test("done with an error carries the server's message", () => {
  assert.deepEqual(readPublication({ text: '', done: true, reason: 'timeout', error: 'took 120 s' }), {
    kind: 'done',
    outcome: { reason: 'timeout', error: 'took 120 s' },
  });
});

test('done without a reason still ends the answer, as one that ended unexpectedly', () => {
  const read = readPublication({ done: true });
  assert.equal(read.kind, 'done');
  assert.equal(read.kind === 'done' && read.outcome.reason, 'unknown');
});

test('anything else is skipped', () => {
  for (const data of [null, undefined, 'text', 42, {}, { text: 5, done: false }, { done: false }]) {
    assert.deepEqual(readPublication(data), { kind: 'unknown' }, JSON.stringify(data));
  }
});

test("done carries its stream's last seq, so a reader can tell it missed chunks", () => {
  assert.deepEqual(readPublication({ text: '', done: true, reason: 'complete', seq: 7 }), {
    kind: 'done',
    outcome: { reason: 'complete', error: '' },
    seq: 7,
  });
});

test('a seq that is not a positive whole number is left out, not trusted', () => {
  for (const seq of [0, -1, 1.5, '3', null]) {
    assert.deepEqual(readPublication({ text: 'x', done: false, seq }), { kind: 'chunk', text: 'x', phase: 'answer' });
  }
});
