// Follows one answer's channel from its first publication to its `done`.

/**
 * Subscribes to `channel` from the start of its history, so nothing published before the
 * subscription is live can be missed, and calls `onChunk(text, phase)` for each chunk.
 * Returns `{done, stop}`: `done` resolves with the `done` publication (or a stand-in with reason
 * `lost` when the history is gone) once the subscription is removed; `stop()` ends it early.
 */
export function followChannel(centrifuge, channel, onChunk) {
  const existing = centrifuge.getSubscription(channel);
  if (existing) centrifuge.removeSubscription(existing);

  let stop = () => {};
  const done = new Promise((resolve) => {
    const sub = centrifuge.newSubscription(channel, { since: { offset: 0, epoch: '' } });
    let finished = false;
    const finish = (done) => {
      if (finished) return;
      finished = true;
      sub.removeAllListeners();
      sub.unsubscribe();
      centrifuge.removeSubscription(sub);
      resolve(done);
    };

    sub.on('publication', (ctx) => {
      const data = ctx.data || {};
      if (data.done) {
        finish(data);
      } else if (typeof data.text === 'string') {
        onChunk(data.text, data.phase === 'thinking' ? 'thinking' : 'answer');
      }
    });
    sub.on('subscribed', (ctx) => {
      // History expired or the server restarted: what arrives now is not the whole answer.
      if (ctx.wasRecovering && !ctx.recovered) {
        finish({ done: true, reason: 'lost', error: 'the server no longer has it' });
      }
    });
    sub.on('unsubscribed', (ctx) => {
      if (!finished && ctx.code !== 0) {
        finish({ done: true, reason: 'error', error: ctx.reason || 'the subscription was refused' });
      }
    });
    stop = (reason = 'cancelled', error = '') => finish({ done: true, reason, error });
    sub.subscribe();
  });
  return { done, stop: (...args) => stop(...args) };
}
