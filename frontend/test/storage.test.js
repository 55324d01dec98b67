// @ts-check
// Conversations in storage: one IndexedDB will not take (its storage full) is kept in memory
// over what it holds, listed and shown, said to be unsaved, and written at the next change; only
// an IndexedDB that cannot be used at all leaves memory alone.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import { newConversation, renamed, withEnding, withTurns } from '../src/conversation.js';
import { ConversationStore } from '../src/storage.js';
import { FakeDatabase } from './fake-indexeddb.js';

/** @import { Conversation } from '../src/conversation.js' */
/** @import { StorageProblem } from '../src/storage.js' */

/** @type {ConversationStore[]} */
const opened = [];
afterEach(() => {
  for (const store of opened.splice(0)) store.broadcast?.close();
});

/** @param {FakeDatabase} database */
function storeOn(database) {
  /** @type {(StorageProblem | null)[]} */
  const said = [];
  /** @type {string[]} what other tabs said they changed */
  const heard = [];
  /** @type {() => void} */
  let hear = () => {};
  const store = new ConversationStore(
    {
      changed: (id, deleted) => {
        heard.push(deleted ? `${id} deleted` : id);
        hear();
      },
      trouble: (problem) => said.push(problem),
    },
    database.use,
  );
  opened.push(store);
  /** Until another tab has told of `count` changes in all. @param {number} count */
  const heardOf = (count) =>
    new Promise((resolve) => {
      hear = () => heard.length >= count && resolve(undefined);
      hear();
    });
  return { store, said, heard, heardOf };
}

/**
 * @param {string} id
 * @param {number} now
 * @returns {Conversation}
 */
const chat = (id, now) => withTurns(newConversation(id, now), [{ role: 'user', text: id }], now);

/** @param {ConversationStore} store */
const titles = async (store) => (await store.list()).map((c) => c.title);

for (const full of /** @type {const} */ (['put', 'commit'])) {
  test(`storage full (${full}): the stored conversations stay listed, the new one is kept here and said unsaved`, async () => {
    const database = new FakeDatabase();
    const { store, said } = storeOn(database);
    for (const [i, id] of ['first', 'second', 'third'].entries()) await store.put(chat(id, i + 1));
    assert.deepEqual(said, []);

    database.full = full;
    await store.put(chat('fourth', 4));
    assert.deepEqual(await titles(store), ['fourth', 'third', 'second', 'first']);
    assert.equal((await store.get('fourth'))?.title, 'fourth');
    assert.deepEqual(said, [{ kind: 'full', reason: 'The quota has been exceeded.' }]);
    assert.deepEqual(database.ids(), ['first', 'second', 'third']);

    // Its changes are kept here too, and so is a change to a stored one that cannot be written.
    await store.update('fourth', (c) => renamed(c, 'fourth, renamed'));
    await store.update('first', (c) => renamed(c, 'first, renamed'));
    assert.deepEqual(await titles(store), ['fourth, renamed', 'third', 'second', 'first, renamed']);
    assert.equal(said.length, 1);

    // Deleting an old one makes room: what was not saved is written, and the news goes.
    database.full = false;
    await store.delete('second');
    assert.deepEqual(said.at(-1), null);
    assert.deepEqual(
      database.conversations().map((c) => /** @type {Conversation} */ (c).title).sort(),
      ['first, renamed', 'fourth, renamed', 'third'],
    );
    // A new page (nothing in memory) finds them all.
    assert.deepEqual(await titles(storeOn(database).store), ['fourth, renamed', 'third', 'first, renamed']);
  });
}

test('what storage could not take is written at the next change', async () => {
  const database = new FakeDatabase();
  const { store, said } = storeOn(database);
  database.full = 'commit';
  await store.put(chat('one', 1));
  database.full = false;
  await store.put(chat('two', 2));
  assert.deepEqual(database.ids().sort(), ['one', 'two']);
  assert.deepEqual(said, [{ kind: 'full', reason: 'The quota has been exceeded.' }, null]);
});

test('an answer arriving in a conversation not saved goes on being kept with it', async () => {
  const database = new FakeDatabase();
  const { store } = storeOn(database);
  database.full = 'put';
  await store.put(chat('one', 1));
  await store.update('one', (c) => withTurns(c, [...c.turns, { role: 'user', text: 'again' }], 2), { quiet: true });
  assert.deepEqual((await store.get('one'))?.turns.map((t) => (t.role === 'user' ? t.text : '')), ['one', 'again']);
});

test('an IndexedDB that cannot be opened: conversations last in memory, and the page says so', async () => {
  const database = new FakeDatabase();
  database.closed = true;
  const { store, said } = storeOn(database);
  assert.deepEqual(await titles(store), []);
  await store.put(chat('one', 1));
  await store.put(chat('two', 2));
  await store.update('one', (c) => renamed(c, 'one, renamed'));
  assert.deepEqual(await titles(store), ['two', 'one, renamed']);
  await store.delete('two');
  assert.deepEqual(await titles(store), ['one, renamed']);
  assert.equal(said.length, 1);
  assert.equal(said[0]?.kind, 'unavailable');
  assert.match(said[0]?.reason ?? '', /did not allow mutations/);
});

test('another failed write is said with its reason', async () => {
  const database = new FakeDatabase();
  database.failing = true;
  const { store, said } = storeOn(database);
  await store.put(chat('one', 1));
  assert.deepEqual(said, [{ kind: 'unsaved', reason: 'The disk is on fire.' }]);
  assert.deepEqual(await titles(store), ['one']);
});

test('with storage full, a conversation another tab deletes is not written back by this one', async () => {
  // Review: this tab kept its unsaved copy over the deletion, listed it, and its next write
  // stored it again.
  const database = new FakeDatabase();
  const a = storeOn(database);
  const b = storeOn(database);
  await a.store.put(chat('old', 1));
  await a.store.put(chat('x', 2));
  database.full = 'put';
  await b.store.update('x', (c) => renamed(c, 'x, renamed here'));
  assert.equal((await b.store.get('x'))?.title, 'x, renamed here'); // kept, unsaved
  database.full = false;

  const told = b.heardOf(3); // the two puts, then the delete
  await a.store.delete('x');
  await told;

  assert.equal(await b.store.get('x'), null);
  assert.deepEqual(await titles(b.store), ['old']);
  await b.store.delete('old');
  assert.deepEqual(database.ids(), []);
});

test('what another tab wrote makes this one write what waits here, room permitting', async () => {
  const database = new FakeDatabase();
  const a = storeOn(database);
  const b = storeOn(database);
  database.full = 'commit';
  await b.store.put(chat('waiting', 1));
  assert.equal(b.said.at(-1)?.kind, 'full');
  database.full = false;

  const told = b.heardOf(1);
  await a.store.put(chat('other', 2)); // room now (the other tab deleted old ones, say)
  await told;
  await b.store.saving;

  assert.deepEqual(database.ids().sort(), ['other', 'waiting']);
  assert.deepEqual(b.said.at(-1), null);
});

test('a delete IndexedDB refuses is said, kept from the list, and done with the next write', async () => {
  // Review: a failed delete was dropped silently, and the conversation came back with the next
  // page.
  const database = new FakeDatabase();
  const { store, said } = storeOn(database);
  await store.put(chat('one', 1));
  await store.put(chat('two', 2));

  database.failing = true;
  await store.delete('one');
  assert.deepEqual(said, [{ kind: 'unsaved', reason: 'The disk is on fire.' }]);
  assert.deepEqual(await titles(store), ['two']);
  assert.equal(await store.get('one'), null);

  database.failing = false;
  await store.put(chat('three', 3));
  assert.deepEqual(database.ids().sort(), ['three', 'two']);
  assert.deepEqual(said.at(-1), null);
});

test('a conversation deleted and brought back (Undo) before the delete could be written stays', async () => {
  const database = new FakeDatabase();
  const { store } = storeOn(database);
  const one = chat('one', 1);
  await store.put(one);
  database.failing = true;
  await store.delete('one');
  database.failing = false;
  await store.put(one); // Undo
  assert.deepEqual(await titles(store), ['one']);
  assert.deepEqual(database.ids(), ['one']);
});

test('other tabs are told whether a conversation was deleted, not left to guess it from a read', async () => {
  // Review: a tab took a conversation another tab changed for deleted when its own read of it
  // failed (found nothing), and stopped its answer.
  const database = new FakeDatabase();
  const a = storeOn(database);
  const b = storeOn(database);
  const told = b.heardOf(3);
  await a.store.put(chat('one', 1));
  await a.store.update('one', (c) => renamed(c, 'one, renamed'));
  await a.store.delete('one');
  await told;
  assert.deepEqual(b.heard, ['one', 'one', 'one deleted']);
});

/**
 * A conversation of `exchanges` prompts and answers.
 * @param {string} id
 * @param {number} now
 * @param {number} exchanges
 * @returns {Conversation}
 */
const longChat = (id, now, exchanges = 5) =>
  withTurns(
    newConversation(id, now),
    Array.from({ length: exchanges }, (_, i) =>
      /** @type {const} */ ([
        { role: 'user', text: i ? `${id}, question ${i}` : id },
        { role: 'assistant', channel: `stream:${id}${i}0000000#u`, reason: 'complete', answer: 'An answer. '.repeat(50) },
      ]),
    ).flat(),
    now,
  );

test('the list reads each conversation\'s summary, not the conversation whole', async () => {
  // Probe: drawing the list read every conversation whole, 100-160 ms with 300 long ones.
  const database = new FakeDatabase();
  const { store } = storeOn(database);
  for (const [i, id] of ['first', 'second', 'third'].entries()) await store.put(longChat(id, i + 1));
  await store.update('first', (c) => renamed(c, 'first, renamed'));

  const page = storeOn(database).store; // a new page: nothing in memory
  database.wholeReads = 0;
  const listed = await page.list();
  assert.equal(database.wholeReads, 0, 'no conversation was read whole for the list');
  assert.deepEqual(listed.map((c) => c.title), ['third', 'second', 'first, renamed']);
  assert.deepEqual(listed[0], { id: 'third', title: 'third', created: 3, updated: 3, unfinished: false });
  assert.equal((await page.get('second'))?.turns.length, 10, 'the conversation itself is there, whole');
});

test('a summary says whether an answer was still arriving, and goes with its conversation', async () => {
  const database = new FakeDatabase();
  const { store } = storeOn(database);
  /** @type {import('../src/conversation.js').Turn[]} */
  const asked = [
    { role: 'user', text: 'hi' },
    { role: 'assistant', channel: 'stream:one00000#u', reason: null },
  ];
  await store.put(withTurns(newConversation('one', 1), asked, 1));
  await store.put(chat('two', 2));
  assert.deepEqual((await store.list()).map((c) => [c.id, c.unfinished]), [['two', false], ['one', true]]);
  await store.delete('one');
  await store.delete('two');
  assert.equal(database.rows.size, 0, 'summaries deleted with their conversations');
});

test('conversations kept before there were summaries are all listed, and summarised once', async () => {
  const database = new FakeDatabase();
  const ids = ['a', 'b', 'c', 'd'];
  for (const [i, id] of ids.entries()) database.putDirectly(id, longChat(id, i + 1)); // an older page's
  database.putDirectly('junk', { not: 'a conversation' });
  const { store } = storeOn(database);

  database.wholeReads = 0;
  assert.deepEqual(await titles(store), ['d', 'c', 'b', 'a']);
  assert.equal(database.wholeReads, 4, 'read whole the first time');
  assert.deepEqual(await titles(store), ['d', 'c', 'b', 'a']);
  assert.deepEqual(await titles(storeOn(database).store), ['d', 'c', 'b', 'a']);
  assert.equal(database.wholeReads, 4, 'and never again');
  assert.equal(database.conversations().length, 5, 'nothing lost, nothing dropped');

  // One an older page deleted since (it leaves the summary behind) is not listed.
  database.rows.delete(JSON.stringify('b'));
  assert.deepEqual(await titles(store), ['d', 'c', 'a']);
});

for (const trouble of /** @type {const} */ (['full', 'failing'])) {
  test(`conversations without summaries are listed while their summaries cannot be written (${trouble})`, async () => {
    const database = new FakeDatabase();
    for (const [i, id] of ['a', 'b'].entries()) database.putDirectly(id, chat(id, i + 1));
    const { store, said } = storeOn(database);
    if (trouble === 'full') database.full = 'commit';
    else database.failing = true;
    assert.deepEqual(await titles(store), ['b', 'a']);
    assert.deepEqual(await titles(store), ['b', 'a']);
    assert.deepEqual(said, [], 'nothing of the reader\'s is unsaved');
    database.full = false;
    database.failing = false;
    assert.deepEqual(await titles(store), ['b', 'a']);
    database.wholeReads = 0;
    assert.deepEqual(await titles(store), ['b', 'a']);
    assert.equal(database.wholeReads, 0, 'summarised once it could be');
  });
}

test("another tab's change shows in the list, from the summaries alone", async () => {
  const database = new FakeDatabase();
  const a = storeOn(database);
  const b = storeOn(database);
  const told = b.heardOf(3);
  await a.store.put(longChat('one', 1));
  await a.store.put(longChat('two', 2));
  await a.store.update('one', (c) => withTurns(c, [...c.turns, { role: 'user', text: 'more' }], 3));
  await told;
  database.wholeReads = 0;
  assert.deepEqual(await titles(b.store), ['one', 'two']);
  assert.equal(database.wholeReads, 0);
});

test('a change an older page makes in another tab (without its summary) shows in the list too', async () => {
  const database = new FakeDatabase();
  const { store, heardOf } = storeOn(database);
  await store.put(chat('one', 1));
  await store.put(chat('two', 2));
  assert.deepEqual(await titles(store), ['two', 'one']);

  // The older page writes the conversation alone, and tells as it did: {id, deleted}.
  database.putDirectly('one', renamed({ ...chat('one', 1), updated: 3 }, 'one, renamed there'));
  const told = heardOf(1);
  const older = new BroadcastChannel('relaychat:conversations');
  older.postMessage({ id: 'one', deleted: false });
  await told;
  older.close();
  assert.deepEqual(await titles(store), ['one, renamed there', 'two']);
});

test('what an older page changed and deleted while no tab of this page heard is set right once a page loads', async () => {
  const database = new FakeDatabase();
  const { store: before } = storeOn(database);
  await before.put(chat('one', 1));
  await before.put(chat('two', 2));
  await before.put(chat('gone', 3));
  before.broadcast?.close(); // no tab of this page is open now

  // An older page writes a conversation alone (a new title, an answer arriving) and deletes one
  // without its summary, as idb-keyval's `set` and `del` did.
  const one = chat('one', 1);
  const arriving = { role: /** @type {const} */ ('assistant'), text: '', channel: 'stream:a#u', reason: null };
  database.putDirectly('one', withTurns(renamed(one, 'one, renamed there'), [...one.turns, arriving], 5));
  database.rows.delete(JSON.stringify('gone'));

  const { store } = storeOn(database);
  assert.deepEqual(await titles(store), ['two', 'one']); // 'one' as its summary was left
  assert.equal(database.rows.has(JSON.stringify(['summary', 'gone'])), true);
  assert.equal(await store.reconcile(), true);
  assert.deepEqual(
    (await store.list()).map((c) => [c.title, c.unfinished]),
    [['one, renamed there', true], ['two', false]],
  );
  assert.equal(database.rows.has(JSON.stringify(['summary', 'gone'])), false); // its summary too
  assert.equal(await store.reconcile(), false); // in line now: nothing more to do
});

test('progress kept apart (a page being left) shows in its answer while it runs, and goes once it ended', async () => {
  const database = new FakeDatabase();
  const { store } = storeOn(database);
  const channel = 'stream:abcdefgh#u';
  /** @type {Conversation} */
  const running = withTurns(
    newConversation('c1', 1),
    [
      { role: 'user', text: 'hi' },
      { role: 'assistant', channel, reason: null, answer: 'Hel' },
    ],
    1,
  );
  await store.put(running);
  await store.keepProgressNow(channel, { answer: 'Hello wor', thinking: '' });
  const answerOf = async () => {
    const turn = (await store.get('c1'))?.turns[1];
    return turn?.role === 'assistant' ? turn.answer : undefined;
  };
  assert.equal(await answerOf(), 'Hello wor');
  // Nothing else was written over: the conversation itself is as it was.
  assert.equal(/** @type {Conversation} */ (database.conversations()[0]).turns.length, 2);
  await store.keepProgressNow(channel, { answer: 'H', thinking: '' }); // a tab further behind
  assert.equal(await answerOf(), 'Hel');
  const ending = { reason: 'complete', error: '', answer: 'Hello world', thinking: '' };
  await store.update('c1', (stored) => withEnding(stored, channel, ending));
  await store.keepProgressNow(channel, { answer: 'Hello world, and more', thinking: '' });
  assert.equal(await answerOf(), 'Hello world'); // ended: its ending stands
  assert.ok(database.rows.has(JSON.stringify(['progress', channel])));
  await store.reconcile();
  assert.ok(!database.rows.has(JSON.stringify(['progress', channel]))); // spent: taken away
});

test('progress kept for a conversation deleted meanwhile does not bring it back', async () => {
  const database = new FakeDatabase();
  const { store } = storeOn(database);
  const channel = 'stream:ijklmnop#u';
  await store.put(withTurns(newConversation('c2', 1), [{ role: 'user', text: 'hi' }, { role: 'assistant', channel, reason: null }], 1));
  await store.delete('c2');
  await store.keepProgressNow(channel, { answer: 'late', thinking: '' });
  assert.equal(await store.get('c2'), null);
  assert.deepEqual(await store.list(), []);
  await store.reconcile();
  assert.equal(database.rows.size, 0);
});
