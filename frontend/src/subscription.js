// @ts-check
// The subscription to one answer's channel, from its first publication to its `done`.
import { readPublication } from './publication.js';

/** @import { Centrifuge } from 'centrifuge' */
/** @import { Outcome } from './publication.js' */

/**
 * @callback OnChunk
 * @param {string} text
 * @param {'answer' | 'thinking'} phase
 * @returns {void}
 */

/**
 * @typedef {object} AnswerSubscription
 * @property {Promise<Outcome>} outcome  how the answer ended, once the subscription is removed
 * @property {(reason?: string, error?: string) => void} stop  ends it early with that outcome
 */

/**
 * Subscribes to `channel` from the start of its history, so nothing published before the
 * subscription is live can be missed, and calls `onChunk(text, phase)` for each chunk. The
 * outcome is the `done` publication's, or `lost` when the history is gone, or `error` when the
 * server refuses the subscription.
 * @param {Centrifuge} centrifuge
 * @param {string} channel
 * @param {OnChunk} onChunk
 * @returns {AnswerSubscription}
 */
export function subscribeAnswer(centrifuge, channel, onChunk) {
  const existing = centrifuge.getSubscription(channel);
  if (existing) centrifuge.removeSubscription(existing);

  const sub = centrifuge.newSubscription(channel, { since: { offset: 0, epoch: '' } });
  /** @type {(outcome: Outcome) => void} */
  let resolve = () => {};
  /** @type {Promise<Outcome>} */
  const outcome = new Promise((settle) => {
    resolve = settle;
  });
  let ended = false;
  /** @param {Outcome} result */
  const end = (result) => {
    if (ended) return;
    ended = true;
    sub.removeAllListeners();
    sub.unsubscribe();
    centrifuge.removeSubscription(sub);
    resolve(result);
  };

  sub.on('publication', (ctx) => {
    const publication = readPublication(ctx.data);
    if (publication.kind === 'done') end(publication.outcome);
    else if (publication.kind === 'chunk') onChunk(publication.text, publication.phase);
  });
  sub.on('subscribed', (ctx) => {
    // History expired or the server restarted: what arrives now is not the whole answer.
    if (ctx.wasRecovering && !ctx.recovered) {
      end({ reason: 'lost', error: 'the server no longer has it' });
    }
  });
  sub.on('unsubscribed', (ctx) => {
    if (ctx.code !== 0) end({ reason: 'error', error: ctx.reason || 'the subscription was refused' });
  });
  sub.subscribe();
  return { outcome, stop: (reason = 'cancelled', error = '') => end({ reason, error }) };
}
