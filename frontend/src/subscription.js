// @ts-check
// The subscription to one answer's channel, from its first publication to its `done`: feeds
// Centrifugo's events to an AnswerFollower (docs/protocol.md, "Resuming").
import { AnswerFollower } from './follower.js';
import { subscriptionRefused } from './words.js';

/** @import { Centrifuge, StreamPosition, Subscription, SubscribedContext } from 'centrifuge' */
/** @import { Outcome } from './publication.js' */
/** @import { ReceivedAnswer } from './received.js' */
/** @import { StreamSnapshot } from './follower.js' */

/**
 * @typedef {object} AnswerSubscription
 * @property {Promise<Outcome>} outcome  how the answer ended, once the subscription is removed
 * @property {(reason?: string, error?: string) => void} stop  ends it early with that outcome
 * @property {() => void} check  asks the backend how the answer is going, now
 * @property {() => void} settleStop  asks the backend how the answer ended, Stop having found
 *   nothing running; nobody having it ends it as stopped
 * @property {() => void} wantStop  Stop was pressed: nobody having the answer any more ends it as
 *   stopped, whether the cancel or a snapshot learns it
 */

/**
 * @typedef {object} FollowOptions
 * @property {(answer: ReceivedAnswer) => void} show  called whenever the answer changed
 * @property {() => Promise<StreamSnapshot>} readSnapshot  the backend's copy of the answer
 * @property {(message: string) => void} [unsure]  the backend cannot be asked about the
 *   answer right now (why), or '' once it can (see AnswerFollower)
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
export function subscribeAnswer(centrifuge, channel, { show, readSnapshot, unsure, restoring = false }) {
  const existing = centrifuge.getSubscription(channel);
  if (existing) centrifuge.removeSubscription(existing);

  /** @type {(outcome: Outcome) => void} */
  let resolve = () => {};
  /** @type {Promise<Outcome>} */
  const outcome = new Promise((settle) => {
    resolve = settle;
  });
  const follower = new AnswerFollower({
    readSnapshot,
    show,
    unsure,
    end: (result) => {
      close(sub);
      resolve(result);
    },
  });
  /** the epoch whose history was asked for from its start: that one is not asked again */
  let readFrom = '';

  /** @param {StreamPosition} since */
  function open(since) {
    const opened = centrifuge.newSubscription(channel, { since });
    opened.on('publication', (ctx) => follower.publication(ctx.data));
    opened.on('subscribed', (ctx) => {
      if (readNewEpoch(ctx)) return;
      follower.subscribed({
        // A history that cannot fill the gap (a new epoch after a restart, or expired).
        recovered: !(ctx.wasRecovering && !ctx.recovered),
        emptyHistory: (ctx.streamPosition?.offset ?? 0) === 0,
        restoring,
      });
    });
    opened.on('subscribing', () => follower.paused());
    opened.on('unsubscribed', (ctx) => {
      if (ctx.code !== 0) follower.stop({ reason: 'error', error: subscriptionRefused(ctx) });
    });
    opened.subscribe();
    return opened;
  }

  /**
   * Recovery failed into a new epoch that already holds publications (Redis restarted under
   * Centrifugo, which unsubscribed with "insufficient state" and took the client back at the new
   * epoch's top): the chunks published in it meanwhile are in its history, from its start,
   * though no subscription delivers them. The channel is read again from that start (recovery
   * needs no history permission), in a subscription of its own; the chunks the page has are
   * skipped by `seq`. The snapshot is asked all the same, for what the epochs did not keep.
   * @param {SubscribedContext} ctx
   */
  function readNewEpoch(ctx) {
    const position = ctx.streamPosition;
    if (!ctx.wasRecovering || ctx.recovered || !position?.epoch || !position.offset) return false;
    if (position.epoch === readFrom) return false; // read from its start already: its history is short
    readFrom = position.epoch;
    follower.subscribed({ recovered: false, emptyHistory: false, restoring });
    close(sub);
    sub = open({ offset: 0, epoch: position.epoch });
    return true;
  }

  /** @param {Subscription} closing */
  function close(closing) {
    closing.removeAllListeners();
    closing.unsubscribe();
    centrifuge.removeSubscription(closing);
  }

  let sub = open({ offset: 0, epoch: '' });
  return {
    outcome,
    stop: (reason = 'cancelled', error = '') => follower.stop({ reason, error }),
    check: () => follower.check(),
    settleStop: () => follower.settleStop(),
    wantStop: () => follower.wantStop(),
  };
}
