// @ts-check
// What reading the list of conversations from storage costs, before and after summaries: by
// default 300 conversations of 50 messages each (25 prompts of ~200 characters, 25 answers of
// ~1,500), in the tests' fake IndexedDB (test/fake-indexeddb.js: values copied out with
// structuredClone, as IndexedDB does; every request answers in a timer of its own, ~1 ms, the
// same for both). `node bench/list.js [conversations] [messages] [rounds]`; no assertion, figures
// only (test/storage.test.js checks that the list reads no conversation whole).
import { values } from 'idb-keyval';
import { performance } from 'node:perf_hooks';

import { newConversation, readConversation, recentFirst, withTurns } from '../src/conversation.js';
import { ConversationStore } from '../src/storage.js';
import { FakeDatabase } from '../test/fake-indexeddb.js';

/** @import { Turn } from '../src/conversation.js' */

const [count = 300, messages = 50, rounds = 15] = process.argv.slice(2).map(Number);

const prompt = (/** @type {number} */ i) => `Question ${i}: ${'how does this part of the relay work, and why? '.repeat(4)}`;
const answer = (/** @type {number} */ i) =>
  `## Part ${i}\n\n${'The relay takes each token and publishes it, in order, to the channel. '.repeat(14)}\n\n` +
  '```js\nconst sub = centrifuge.newSubscription(channel);\nsub.on("publication", show);\n```\n\n' +
  '| a | b |\n|---|---|\n| 1 | 2 |\n'.repeat(3);

/** @param {number} n */
function conversation(n) {
  /** @type {Turn[]} */
  const turns = [];
  for (let i = 0; i < messages / 2; i += 1) {
    turns.push({ role: 'user', text: prompt(i) });
    turns.push({ role: 'assistant', channel: `stream:c${n}x${i}padding#u_1`, reason: 'complete', answer: answer(i) });
  }
  return withTurns(newConversation(`conversation-${n}`, n), turns, 1_000 + n);
}

/** @param {number[]} times */
const median = (times) => times.slice().sort((a, b) => a - b)[Math.floor(times.length / 2)];
/** @param {number} ms */
const shown = (ms) => `${ms.toFixed(1)} ms`;

/**
 * @param {() => Promise<unknown[]>} read
 * @returns {Promise<{times: number[], listed: number}>}
 */
async function timed(read) {
  const times = [];
  let listed = 0;
  for (let i = 0; i < rounds; i += 1) {
    const start = performance.now();
    listed = (await read()).length;
    times.push(performance.now() - start);
  }
  return { times, listed };
}

// As the page kept them before summaries (idb-keyval's `set`, one row a conversation).
const database = new FakeDatabase();
for (let n = 0; n < count; n += 1) database.putDirectly(`conversation-${n}`, conversation(n));
const size = JSON.stringify(database.conversations()).length;
console.log(`${count} conversations of ${messages} messages, ${(size / 1e6).toFixed(1)} MB as JSON; ${rounds} rounds each`);

// Before: the list read every conversation whole (storage.js `list()` until summaries).
database.wholeReads = 0;
const before = await timed(async () => recentFirst((await values(database.use)).map(readConversation).filter((c) => c !== null)));
console.log(`before, every conversation read whole: median ${shown(median(before.times))}, ` +
  `min ${shown(Math.min(...before.times))} (${before.listed} listed, ${database.wholeReads / rounds} read whole each time)`);

const store = new ConversationStore({ changed: () => {}, trouble: () => {} }, database.use);
database.wholeReads = 0;
let start = performance.now();
const first = await store.list();
console.log(`after, the first list (summarises the ${database.wholeReads} conversations it finds without one, ` +
  `once): ${shown(performance.now() - start)} (${first.length} listed)`);

database.wholeReads = 0;
const after = await timed(() => store.list());
console.log(`after, from the summaries: median ${shown(median(after.times))}, min ${shown(Math.min(...after.times))} ` +
  `(${after.listed} listed, ${database.wholeReads} read whole)`);

// The fake's own floor: one read-only transaction with one request.
const floor = await timed(() => database.use('readonly', (objects) => new Promise((resolve) => {
  const request = objects.get('none');
  request.onsuccess = () => resolve([]);
})));
console.log(`the fake's floor (one transaction, one request, its timers): median ${shown(median(floor.times))}`);

// A change written: the conversation and its summary in one transaction.
start = performance.now();
await store.update('conversation-0', (c) => withTurns(c, [...c.turns, { role: 'user', text: 'one more' }], 9_999));
console.log(`a change to one conversation, written with its summary: ${shown(performance.now() - start)}`);
store.broadcast?.close();
