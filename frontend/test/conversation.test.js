// @ts-check
// Conversations: titles, asking again, editing a prompt (and an edit left unsent), outcomes, what
// storage gives back.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  UNTITLED,
  addressedId,
  askAgain,
  boxWithEdit,
  editPrompt,
  newConversation,
  promptStillAt,
  readConversation,
  recentFirst,
  renamed,
  titleFrom,
  withEnding,
  withResend,
  withProgress,
  withStopPressed,
  withTurns,
} from '../src/conversation.js';

/** @import { Turn } from '../src/conversation.js' */

/**
 * @param {string} prompt
 * @param {string} answer
 * @param {string | null} [reason]
 * @returns {Turn[]}
 */
const exchange = (prompt, answer, reason = 'complete') => [
  { role: 'user', text: prompt },
  { role: 'assistant', channel: `stream:${prompt}00000000#u`, reason, answer },
];

test('a title is the first line of the first prompt, whitespace folded', () => {
  assert.equal(titleFrom('  How do   I\tsort a list?\nIn Python.'), 'How do I sort a list?');
  assert.equal(titleFrom('\n\n  second line first  '), 'second line first');
  assert.equal(titleFrom('   \n '), UNTITLED);
});

test('a long title is cut at a word, with an ellipsis', () => {
  const title = titleFrom('word '.repeat(40));
  assert.ok(title.endsWith('…'), title);
  assert.ok([...title].length <= 61, title);
  assert.ok(!title.includes('wor…'), title);
  const unbroken = titleFrom('x'.repeat(100));
  assert.equal(unbroken, `${'x'.repeat(60)}…`);
});

test('an emoji is never cut in half', () => {
  const title = titleFrom('🙂'.repeat(70));
  assert.equal(title, `${'🙂'.repeat(60)}…`);
});

test('a conversation takes its title from its first prompt until the reader renames it', () => {
  let conversation = newConversation('c1', 1);
  assert.equal(conversation.title, UNTITLED);
  conversation = withTurns(conversation, exchange('Tables in Markdown', 'yes'), 2);
  assert.equal(conversation.title, 'Tables in Markdown');
  assert.equal(conversation.updated, 2);
  conversation = renamed(conversation, '  My   tables ');
  assert.equal(conversation.title, 'My tables');
  conversation = withTurns(conversation, editPrompt(conversation.turns, 0, 'Lists'), 3);
  assert.equal(conversation.title, 'My tables', 'a chosen title stays');
  conversation = renamed(conversation, '   ');
  assert.equal(conversation.title, 'Lists', 'a blank name goes back to the first prompt');
  assert.equal(conversation.renamed, false);
});

test('asking again keeps the prompt and drops only its answer', () => {
  const turns = [...exchange('one', 'first'), ...exchange('two', 'second', 'cancelled')];
  assert.deepEqual(askAgain(turns), { turns: turns.slice(0, 3), prompt: 'two' });
  assert.equal(askAgain([]), null);
  assert.equal(askAgain(turns.slice(0, 1)), null, 'a prompt without an answer');
});

test('editing a prompt drops its answer and every later turn', () => {
  const turns = [...exchange('one', 'first'), ...exchange('two', 'second'), ...exchange('three', 'third')];
  assert.deepEqual(editPrompt(turns, 2, 'TWO'), [...turns.slice(0, 2), { role: 'user', text: 'TWO' }]);
  assert.deepEqual(editPrompt(turns, 0, 'ONE'), [{ role: 'user', text: 'ONE' }]);
  assert.throws(() => editPrompt(turns, 1, 'not a prompt'), /not a prompt/);
});

test('an unsent edit opens again only on its own prompt, as it was', () => {
  const turns = [...exchange('first', 'one'), ...exchange('second', 'two')];
  assert.equal(promptStillAt(turns, 2, 'second'), true);
  // Another tab edited it, or one before it (and what followed went), or it is an answer now.
  assert.equal(promptStillAt(editPrompt(turns, 2, 'second, edited'), 2, 'second'), false);
  assert.equal(promptStillAt(editPrompt(turns, 0, 'first, edited'), 2, 'second'), false);
  assert.equal(promptStillAt(turns, 1, 'second'), false);
});

test('an unsent edit put in the message box keeps what the box held', () => {
  assert.equal(boxWithEdit('', 'my edit'), 'my edit');
  assert.equal(boxWithEdit(' \n', 'my edit'), 'my edit');
  assert.equal(boxWithEdit('my edit', 'my edit'), 'my edit', 'not twice');
  assert.equal(boxWithEdit('a new prompt\n', 'my edit'), 'a new prompt\n\nmy edit');
  // What the reader is typing is left as it was, its end too: the caret in it stays put.
  assert.equal(boxWithEdit('a new prompt', 'my edit'), 'a new prompt\n\nmy edit');
  assert.equal(boxWithEdit('a list:\n- one\n\n', 'my edit'), 'a list:\n- one\n\nmy edit');
  assert.equal(boxWithEdit('a new prompt  ', 'my edit'), 'a new prompt  \n\nmy edit');
});

test("an answer's ending is kept with its own turn only", () => {
  const conversation = withTurns(newConversation('c', 0), [...exchange('a', '', null), ...exchange('b', '', null)], 0);
  const channel = 'stream:b00000000#u';
  const ending = { reason: 'cancelled', error: '', answer: 'half', thinking: '' };
  const ended = withEnding(conversation, channel, ending);
  assert.ok(ended);
  assert.deepEqual(ended.turns[3], { role: 'assistant', channel, ...ending });
  assert.deepEqual(ended.turns[1], conversation.turns[1]);
  assert.equal(withEnding(conversation, 'stream:gone0000#u', ending), null);
});

test("what arrived of an answer still arriving is kept with it, never over its ending", () => {
  // Probe: a tab closed mid-answer and reopened past the server's 2 minutes showed it empty.
  const running = withTurns(newConversation('c', 1), exchange('p', '', null), 2);
  const channel = 'stream:p00000000#u';
  const kept = withProgress(running, channel, { answer: 'Hello', thinking: 'hm' });
  assert.deepEqual(kept?.turns[1], { role: 'assistant', channel, reason: null, answer: 'Hello', thinking: 'hm' });
  assert.equal(kept && readConversation(kept)?.turns[1].role, 'assistant');
  assert.equal(kept && withProgress(kept, channel, { answer: 'Hello', thinking: 'hm' }), null); // nothing new
  // A tab further behind does not overwrite another's longer text (review).
  assert.equal(kept && withProgress(kept, channel, { answer: 'Hel', thinking: 'hm' }), null);
  const ended = withEnding(running, channel, { reason: 'complete', error: '', answer: 'Hello world', thinking: '' });
  assert.ok(ended);
  assert.equal(withProgress(ended, channel, { answer: 'Hello', thinking: '' }), null); // a late save
  assert.equal(withProgress(running, 'stream:other000#u', { answer: 'x', thinking: '' }), null);
});

test('the list shows the most recently changed conversation first', () => {
  const a = { ...newConversation('a', 1), updated: 5 };
  const b = { ...newConversation('b', 2), updated: 9 };
  const c = { ...newConversation('c', 3), updated: 5 };
  assert.deepEqual(recentFirst([a, b, c]).map((x) => x.id), ['b', 'c', 'a']);
});

test('what storage gives back is checked: unreadable turns and records are left out', () => {
  assert.equal(readConversation(null), null);
  assert.equal(readConversation({ id: 'x' }), null);
  const read = readConversation({
    id: 'x',
    title: 7,
    created: 'yesterday',
    updated: 3,
    turns: [
      { role: 'user', text: 'hi' },
      { role: 'user', text: 5 },
      { role: 'assistant', channel: 'stream:abcdefgh#u', reason: 'complete', answer: 'hello', extra: 1 },
      { role: 'system', text: 'no' },
      'junk',
    ],
  });
  assert.deepEqual(read, {
    id: 'x',
    title: UNTITLED,
    renamed: false,
    created: 0,
    updated: 3,
    turns: [
      { role: 'user', text: 'hi' },
      { role: 'assistant', channel: 'stream:abcdefgh#u', reason: 'complete', answer: 'hello' },
    ],
  });
});

test('an address names its conversation; one that does not decode names none', () => {
  assert.equal(addressedId('#c_1%20a'), 'c_1 a');
  assert.equal(addressedId(''), '');
  assert.equal(addressedId('#%E0%A4%A'), ''); // threw, and the page's start stopped there
});

test('Stop pressed is kept with an answer still running, once, and read back from storage', () => {
  const conversation = {
    ...newConversation('c1', 1),
    turns: [
      { role: /** @type {const} */ ('user'), text: 'hi' },
      { role: /** @type {const} */ ('assistant'), channel: 'stream:a#u', reason: null, answer: 'Hel' },
    ],
  };
  const marked = withStopPressed(conversation, 'stream:a#u');
  assert.ok(marked);
  assert.deepEqual(marked.turns[1], { role: 'assistant', channel: 'stream:a#u', reason: null, answer: 'Hel', stopPressed: true });
  assert.equal(withStopPressed(marked, 'stream:a#u'), null); // marked already
  assert.equal(withStopPressed(conversation, 'stream:other#u'), null);
  const ended = { ...conversation, turns: [conversation.turns[0], { ...conversation.turns[1], reason: 'complete' }] };
  assert.equal(withStopPressed(ended, 'stream:a#u'), null); // over: nothing to tell
  assert.deepEqual(readConversation(JSON.parse(JSON.stringify(marked)))?.turns[1], marked.turns[1]);
  const odd = { ...marked, turns: [marked.turns[0], { ...marked.turns[1], stopPressed: 'yes' }] };
  assert.equal(readConversation(odd)?.turns[1].role === 'assistant' && 'stopPressed' in (readConversation(odd)?.turns[1] ?? {}), false);
});

test('a prompt waiting to be sent again is kept with its answer, read back, and dropped once over', () => {
  const conversation = {
    ...newConversation('c1', 1),
    turns: [
      { role: /** @type {const} */ ('user'), text: 'hi' },
      { role: /** @type {const} */ ('assistant'), channel: 'stream:a#u', reason: null },
    ],
  };
  const resend = { thinking: true, refusedFor: 'the server is stopping', since: 1_700_000_000_000 };
  const marked = withResend(conversation, 'stream:a#u', resend);
  assert.ok(marked);
  assert.deepEqual(marked.turns[1], { role: 'assistant', channel: 'stream:a#u', reason: null, resend });
  assert.deepEqual(readConversation(JSON.parse(JSON.stringify(marked)))?.turns[1], marked.turns[1]);
  // Through: the mark goes; nothing to take off once it has gone.
  assert.deepEqual(withResend(marked, 'stream:a#u', null)?.turns[1], conversation.turns[1]);
  assert.equal(withResend(conversation, 'stream:a#u', null), null);
  assert.equal(withResend(conversation, 'stream:other#u', resend), null);
  // Over: its ending takes the mark off, and an ended answer is not marked again.
  const ended = withEnding(marked, 'stream:a#u', { reason: 'refused', error: 'no', answer: '', thinking: '' });
  assert.ok(ended);
  assert.equal('resend' in ended.turns[1], false);
  assert.equal(withResend(ended, 'stream:a#u', resend), null);
  // One that has not left the browser yet says so; `reached` is read back as false or not at all.
  const offline = withResend(conversation, 'stream:a#u', { ...resend, reached: false });
  assert.deepEqual(readConversation(JSON.parse(JSON.stringify(offline)))?.turns[1], offline?.turns[1]);
  const odd = { ...marked, turns: [marked.turns[0], { ...marked.turns[1], resend: { ...resend, reached: 'no' } }] };
  assert.deepEqual(readConversation(odd)?.turns[1], marked.turns[1]);
  // Unreadable marks are left out.
  const odds = [{ ...resend, thinking: 'yes' }, { thinking: true, refusedFor: '' }, { ...resend, since: 'now' }, 'resend'];
  for (const odd of odds) {
    /** @type {unknown} */
    const kept = { ...marked, turns: [marked.turns[0], { ...marked.turns[1], resend: odd }] };
    const read = readConversation(kept);
    assert.deepEqual(read?.turns[0], marked.turns[0], JSON.stringify(odd)); // the rest is read
    assert.equal('resend' in (read?.turns[1] ?? { resend: 'missing turn' }), false, JSON.stringify(odd));
  }
});
