// @ts-check
// What the page says while it retries by itself (src/waiting.js): what it is doing, never the
// server's "try again shortly", which told the reader to act while the page was already at it.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { newParts, stoppingNote, waitingNote, withoutAdvice } from '../src/waiting.js';

// nginx's bodies (nginx/relaychat.conf.template) and the backend's (backend/api/errors.py).
const GATEWAY_TIMEOUT = 'the server took too long to answer; try again shortly';
const GATEWAY_DOWN = 'the server cannot be reached right now (it may be restarting); try again shortly';
const REGISTRY = 'the streams registry is being rebuilt after a restart; try again in a few seconds';

test("the server's advice to try again is left out", () => {
  assert.equal(withoutAdvice(GATEWAY_TIMEOUT), 'the server took too long to answer');
  assert.equal(withoutAdvice(GATEWAY_DOWN), 'the server cannot be reached right now (it may be restarting)');
  assert.equal(withoutAdvice(REGISTRY), 'the streams registry is being rebuilt after a restart');
  assert.equal(withoutAdvice('the server cannot be reached'), 'the server cannot be reached');
});

test('waiting for the server says that the page keeps trying, and never to try again', () => {
  const note = waitingNote(GATEWAY_TIMEOUT);
  assert.equal(
    note,
    'The server is not answering right now (the server took too long to answer); the page keeps trying, and nothing is lost. You can Stop.',
  );
  assert.doesNotMatch(note, /try again/i);
  assert.doesNotMatch(waitingNote(GATEWAY_TIMEOUT, { stopping: true }), /You can Stop/);
});

test('Stop that cannot get through says that it keeps telling the server', () => {
  const note = stoppingNote(GATEWAY_TIMEOUT);
  assert.equal(note, 'Stopping… the server has not heard yet (the server took too long to answer); the page keeps telling it');
  assert.doesNotMatch(note, /try again|trying again/i);
});

test('a note part that goes does not make the part left news again', () => {
  const stopping = 'Stopping… the server has not heard yet (the server took too long to answer); the page keeps telling it.';
  const waiting = waitingNote(GATEWAY_TIMEOUT, { stopping: true });
  assert.equal(newParts([], ['Stopping…']), 'Stopping…');
  assert.equal(newParts(['Stopping…'], [stopping, waiting]), `${stopping} ${waiting}`);
  assert.equal(newParts([stopping, waiting], [stopping]), '', 'the server answers again: the Stop part is not news');
  assert.equal(newParts([stopping], [stopping]), '', 'shown again (its conversation opened again)');
});
