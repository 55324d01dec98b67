// @ts-check
// The subscription to one answer's channel, from its first publication to its `done`: feeds
// Centrifugo's events to an AnswerFollower (docs/protocol.md, "Resuming").
import { AnswerFollower } from './follower.js';

/** @import { Centrifuge } from 'centrifuge' */
/** @import { Outcome } from './publication.js' */
/** @import { ReceivedAnswer } from './received.js' */
/** @import { StreamSnapshot } from './follower.js' */

/**
 * @typedef {object} AnswerSubscription
 * @property {Promise<Outcome>} outcome  how the answer ended, once the subscription is removed
 * @property {(reason?: string, error?: string) => void} stop  ends it early with that outcome
 */

/**
 * @typedef {object} FollowOptions
 * @property {(answer: ReceivedAnswer) => void} show  called whenever the answer changed
 * @property {() => Promise<StreamSnapshot>} readSnapshot  the backend's copy of the answer
 * @property {boolean} [restoring]  the answer was already running before this page loaded
 */

/**
 * Subscribes to `channel` from the start of its history, so nothing published before the
 * subscription is live can be missed, and shows the answer as it grows. The outcome is the
 * `done` publication's (or the snapshot's), `abandoned` when nobody answers any more, or `error`
 * when the server refuses the subscription.
 * @param {Centrifuge} centrifuge
 * @param {string} channel
 * @param {FollowOptions} options
 * @returns {AnswerSubscription}
 */
export function subscribeAnswer(centrifuge, channel, { show, readSnapshot, restoring = false }) {
  const existing = centrifuge.getSubscription(channel);
  if (existing) centrifuge.removeSubscription(existing);

  const sub = centrifuge.newSubscription(channel, { since: { offset: 0, epoch: '' } });
  /** @type {(outcome: Outcome) => void} */
  let resolve = () => {};
  /** @type {Promise<Outcome>} */
  const outcome = new Promise((settle) => {
    resolve = settle;
  });
  const follower = new AnswerFollower({
    readSnapshot,
    show,
    end: (result) => {
      sub.removeAllListeners();
      sub.unsubscribe();
      centrifuge.removeSubscription(sub);
      resolve(result);
    },
  });

  sub.on('publication', (ctx) => follower.publication(ctx.data));
  sub.on('subscribed', (ctx) =>
    follower.subscribed({
      // A history that cannot fill the gap (a new epoch after a restart, or expired).
      recovered: !(ctx.wasRecovering && !ctx.recovered),
      emptyHistory: (ctx.streamPosition?.offset ?? 0) === 0,
      restoring,
    }),
  );
  sub.on('subscribing', () => follower.paused());
  sub.on('unsubscribed', (ctx) => {
    if (ctx.code !== 0) follower.stop({ reason: 'error', error: ctx.reason || 'the subscription was refused' });
  });
  sub.subscribe();
  return { outcome, stop: (reason = 'cancelled', error = '') => follower.stop({ reason, error }) };
}
