// @ts-check
// The subscription to an answer's channel, against a fake centrifuge-js: Centrifugo's events as a
// Redis restart under it produces them (docs/protocol.md, "Resuming").
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { subscribeAnswer } from '../src/subscription.js';

/** @import { Centrifuge } from 'centrifuge' */
/** @import { StreamSnapshot } from '../src/follower.js' */

const CHANNEL = 'stream:abcdefgh#u_1';

class FakeSubscription {
  /**
   * @param {string} channel
   * @param {{since?: {offset: number, epoch: string}}} options
   */
  constructor(channel, options) {
    this.channel = channel;
    this.since = options.since;
    /** @type {Record<string, ((ctx: any) => void)[]>} */
    this.listeners = {};
    this.subscribing = false;
    this.unsubscribed = false;
  }

  /**
   * @param {string} event
   * @param {(ctx: any) => void} listener
   */
  on(event, listener) {
    (this.listeners[event] ??= []).push(listener);
    return this;
  }

  removeAllListeners() {
    this.listeners = {};
  }

  /**
   * @param {string} event
   * @param {unknown} ctx
   */
  emit(event, ctx) {
    for (const listener of this.listeners[event] ?? []) listener(ctx);
  }

  subscribe() {
    this.subscribing = true;
  }

  unsubscribe() {
    this.unsubscribed = true;
  }

  /** @param {unknown} data */
  publish(data) {
    this.emit('publication', { data });
  }
}

/** The part of centrifuge-js's Centrifuge that subscribeAnswer uses. */
class FakeCentrifuge {
  constructor() {
    /** @type {FakeSubscription[]} every subscription made, in order */
    this.made = [];
    /** @type {Map<string, FakeSubscription>} */
    this.registry = new Map();
  }

  /** @param {string} channel */
  getSubscription(channel) {
    return this.registry.get(channel) ?? null;
  }

  /**
   * @param {string} channel
   * @param {{since?: {offset: number, epoch: string}}} options
   */
  newSubscription(channel, options) {
    if (this.registry.has(channel)) throw new Error(`a subscription to ${channel} exists already`);
    const sub = new FakeSubscription(channel, options);
    this.registry.set(channel, sub);
    this.made.push(sub);
    return sub;
  }

  /** @param {FakeSubscription} sub */
  removeSubscription(sub) {
    if (this.registry.get(sub.channel) === sub) this.registry.delete(sub.channel);
  }
}

/**
 * @param {number} seq
 * @param {string} text
 */
const chunk = (seq, text) => ({ text, done: false, seq });

/** Lets pending snapshot requests settle. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/**
 * An answer followed through a fake centrifuge; snapshots come from `snapshots` in turn.
 * @param {(StreamSnapshot | Error)[]} snapshots
 */
function followed(snapshots) {
  const centrifuge = new FakeCentrifuge();
  let asked = 0;
  /** @type {string[]} */
  const shown = [];
  const subscription = subscribeAnswer(/** @type {Centrifuge} */ (/** @type {unknown} */ (centrifuge)), CHANNEL, {
    show: (answer) => shown.push(answer.text),
    readSnapshot: async () => {
      const next = snapshots[asked++];
      if (!next) throw new Error('no snapshot left in this test');
      if (next instanceof Error) throw next;
      return next;
    },
  });
  return { centrifuge, subscription, shown, asked: () => asked };
}

/** @param {number} status */
const httpError = (status) => Object.assign(new Error(`HTTP ${status}`), { status });

test('the channel is read from the start of its history', () => {
  const { centrifuge } = followed([]);
  assert.equal(centrifuge.made.length, 1);
  assert.deepEqual(centrifuge.made[0].since, { offset: 0, epoch: '' });
  assert.ok(centrifuge.made[0].subscribing);
});

test('recovery that fails into a new epoch holding chunks reads that epoch from its start', async () => {
  // Probe (cluster, Redis killed mid-answer): Centrifugo unsubscribed with 2500 "insufficient
  // state", took the page back at the new epoch's top (offset 2), and the two chunks published
  // there meanwhile were never read: every later chunk was held behind the gap, and the answer
  // ended as lost.
  const rebuilding = httpError(503); // the streams registry rebuilt after the restart
  const { centrifuge, subscription, shown, asked } = followed([rebuilding]);
  const [first] = centrifuge.made;
  first.emit('subscribed', { wasRecovering: true, recovered: true, streamPosition: { offset: 0, epoch: 'A' } });
  for (const seq of [1, 2, 3]) first.publish(chunk(seq, `c${seq} `));

  first.emit('subscribing', { code: 2500, reason: 'insufficient state' });
  first.emit('subscribed', { wasRecovering: true, recovered: false, streamPosition: { offset: 2, epoch: 'B' } });

  assert.equal(centrifuge.made.length, 2, 'the new epoch is read from its start');
  const [, second] = centrifuge.made;
  assert.deepEqual(second.since, { offset: 0, epoch: 'B' });
  assert.ok(second.subscribing);
  assert.ok(first.unsubscribed);
  assert.equal(centrifuge.getSubscription(CHANNEL), second);
  first.publish(chunk(6, 'late ')); // the old subscription is deaf now
  assert.equal(asked(), 1, 'the snapshot is asked all the same');
  await settle();

  second.emit('subscribed', { wasRecovering: true, recovered: true, streamPosition: { offset: 2, epoch: 'B' } });
  second.publish(chunk(4, 'c4 ')); // recovered: offsets 1 and 2 of epoch B
  second.publish(chunk(5, 'c5 '));
  second.publish(chunk(6, 'c6'));
  second.publish({ text: '', done: true, reason: 'complete', seq: 6 });
  assert.deepEqual(await subscription.outcome, { reason: 'complete', error: '' });
  assert.equal(shown.at(-1), 'c1 c2 c3 c4 c5 c6');
  assert.ok(second.unsubscribed);
  assert.equal(centrifuge.getSubscription(CHANNEL), null);
});

test('an epoch read from its start is not read again: its history cannot do more', async () => {
  const { centrifuge, asked } = followed([httpError(503), httpError(503)]);
  const [first] = centrifuge.made;
  first.emit('subscribed', { wasRecovering: true, recovered: true, streamPosition: { offset: 0, epoch: 'A' } });
  first.emit('subscribed', { wasRecovering: true, recovered: false, streamPosition: { offset: 9, epoch: 'B' } });
  await settle();
  const [, second] = centrifuge.made;
  second.emit('subscribed', { wasRecovering: true, recovered: false, streamPosition: { offset: 9, epoch: 'B' } });
  await settle();
  assert.equal(centrifuge.made.length, 2);
  assert.equal(asked(), 2); // the snapshot, for what the epoch's history does not hold
});

test('a new epoch with nothing in it yet needs no second read', () => {
  const { centrifuge, asked } = followed([httpError(503)]);
  const [first] = centrifuge.made;
  first.emit('subscribed', { wasRecovering: true, recovered: false, streamPosition: { offset: 0, epoch: 'B' } });
  assert.equal(centrifuge.made.length, 1);
  assert.equal(asked(), 1); // the snapshot fills what the lost epoch held
});

test('check asks the backend at once (a done late after Stop)', async () => {
  const done = { reason: 'cancelled', error: '' };
  const { centrifuge, subscription, asked } = followed([{ text: 'ab', thinking: '', seq: 2, done }]);
  centrifuge.made[0].emit('subscribed', { wasRecovering: true, recovered: true, streamPosition: { offset: 0, epoch: 'A' } });
  subscription.check();
  assert.equal(asked(), 1);
  assert.deepEqual(await subscription.outcome, done);
});

test("a channel the server refuses ends the answer in the page's words, not Centrifugo's", async () => {
  // Probe: "The answer failed: permission denied." reached the reader.
  const info = console.info;
  console.info = () => {};
  try {
    const { centrifuge, subscription } = followed([]);
    centrifuge.made[0].emit('unsubscribed', { code: 103, reason: 'permission denied' });
    assert.deepEqual(await subscription.outcome, { reason: 'error', error: 'the server would not let the page follow it' });
  } finally {
    console.info = info;
  }
});
