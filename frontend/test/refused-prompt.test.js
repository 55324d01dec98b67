// @ts-check
// A prompt the server refuses as it is (422: too long, blank once trimmed, a history it does not
// take; 413: a body over its size limit) is offered for editing, not for sending again as it was:
// Retry and Regenerate would only get the same refusal. Other failures keep Retry.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import { ApiError, execute, mayHaveBeenAccepted, refusedAsItIs } from '../src/api.js';
import {
  REJECTED,
  boxAfterEdit,
  lastActions,
  newConversation,
  promptBack,
  withEnding,
  withTurns,
} from '../src/conversation.js';

/** @import { Turn } from '../src/conversation.js' */

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

const CHANNEL = 'stream:abcdefgh#u_1';

/**
 * `POST /api/execute` answered with `status` and `detail` (status 0: no answer at all), and the
 * answer ended as main.js ends it: how do the last answer's actions come out?
 * @param {number} status
 * @param {string} detail
 */
async function refusedWith(status, detail) {
  globalThis.fetch = async () => {
    if (status === 0) throw new TypeError('Failed to fetch');
    return Response.json({ detail }, { status });
  };
  const error = await execute({ text: 'x'.repeat(9000), channel: CHANNEL, thinking: false, history: [] }).then(
    () => assert.fail('it was accepted'),
    (/** @type {unknown} */ failure) => failure,
  );
  assert.ok(error instanceof ApiError);
  /** @type {Turn[]} */
  const turns = [
    { role: 'user', text: 'x'.repeat(9000) },
    { role: 'assistant', channel: CHANNEL, reason: null },
  ];
  const asked = withTurns(newConversation('c', 1), turns, 1);
  // The page's choice (main.js, `ask`): refused as it is, refused, or followed in case it got through.
  const reason = refusedAsItIs(error) ? REJECTED : mayHaveBeenAccepted(error) ? 'abandoned' : 'refused';
  const ended = withEnding(asked, CHANNEL, { reason, error: error.message, answer: '', thinking: '' });
  assert.ok(ended);
  const last = ended.turns.at(-1);
  return { error, offers: lastActions(ended.turns), kept: last?.role === 'assistant' ? last.error : '' };
}

test('a prompt refused with 422 offers Edit prompt, not a Retry or Regenerate that would be refused again', async () => {
  const detail = 'text: the prompt is 9,000 characters; the limit is 8,000';
  const { offers, kept } = await refusedWith(422, detail);
  assert.deepEqual(offers, { regenerate: false, retry: false, edit: true });
  assert.equal(kept, detail, "the server's readable message stays with the answer");
});

test('a body over the size limit (413) is refused as it is too', async () => {
  const { offers } = await refusedWith(413, 'the request body is too large');
  assert.deepEqual(offers, { regenerate: false, retry: false, edit: true });
});

test('other failures keep Retry: busy (429), a conflict (409), the server failing (5xx), no answer', async () => {
  for (const status of [409, 429, 500, 503, 502, 0]) {
    const { offers, error } = await refusedWith(status, 'try again later');
    assert.equal(refusedAsItIs(error), false, `status ${status}`);
    assert.deepEqual(offers, { regenerate: true, retry: true, edit: false }, `status ${status}`);
  }
});

test('a completed answer offers Regenerate only; one still arriving offers nothing', () => {
  /** @type {Turn[]} */
  const turns = [
    { role: 'user', text: 'hello' },
    { role: 'assistant', channel: CHANNEL, reason: 'complete', answer: 'Hello!' },
  ];
  assert.deepEqual(lastActions(turns), { regenerate: true, retry: false, edit: false });
  assert.deepEqual(lastActions([turns[0], { role: 'assistant', channel: CHANNEL, reason: null }]), {
    regenerate: false,
    retry: false,
    edit: false,
  });
  assert.deepEqual(lastActions([]), { regenerate: false, retry: false, edit: false });
});

test('the refused prompt goes back to an empty message box, never over what the reader typed there', () => {
  const prompt = 'a prompt\nthe server refused';
  assert.equal(promptBack('', prompt), prompt);
  assert.equal(promptBack('  \n ', prompt), prompt, 'whitespace only counts as empty');
  assert.equal(promptBack(prompt, prompt), prompt, 'already there');
  assert.equal(promptBack('something typed meanwhile', prompt), null, 'kept: the prompt is edited where it is');
});

test('a refused prompt edited where it is and sent takes its copy in the message box along, nothing else', () => {
  const prompt = 'w'.repeat(265);
  /** @type {Turn[]} */
  const turns = [
    { role: 'user', text: 'Show me some code.' },
    { role: 'assistant', channel: CHANNEL, reason: 'complete', answer: 'Here is some.' },
    { role: 'user', text: prompt },
    { role: 'assistant', channel: 'stream:second#u_1', reason: REJECTED, error: 'text: too long' },
  ];
  assert.equal(boxAfterEdit(prompt, turns, 2), '', 'the copy put back in the box goes');
  assert.equal(boxAfterEdit(`${prompt} `, turns, 2), `${prompt} `, 'changed since: it stays');
  assert.equal(boxAfterEdit('a draft of mine', turns, 2), 'a draft of mine');
  assert.equal(boxAfterEdit('', turns, 2), '');
  // Not refused as it was: whatever is in the box is the reader's.
  assert.equal(boxAfterEdit('Show me some code.', turns, 0), 'Show me some code.');
  /** @type {Turn[]} */
  const refused = [...turns.slice(0, 3), { role: 'assistant', channel: 'stream:second#u_1', reason: 'refused' }];
  assert.equal(boxAfterEdit(prompt, refused, 2), prompt);
});
