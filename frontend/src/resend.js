// @ts-check
// A prompt whose request failed on the way (offline, no reply, a gateway's error), or that the
// server refused for now (503 with Retry-After: it is restarting, or full), is sent again, to the
// same channel, until the server says something of it: the reader need not press Retry
// once the network is back (an outside-in probe: the page waited another 15 s, then said "not
// sent"). Sending it twice cannot start two answers: a channel that carried one, or carries
// one, is refused (409), which says the first one got through. Knows nothing of the page: its
// edges are passed in.

/** The first resend this long after the failure (or at once when the browser is back online),
 * then twice as long each time, up to RESEND_MAX_MS. */
export const RESEND_MS = 1_000;
export const RESEND_MAX_MS = 8_000;

/** Statuses that say the prompt did not get through this time either (see `mayHaveBeenAccepted`
 * in api.js): no answer, a gateway's error. */
const NOT_THROUGH = [0, 502, 504];

/**
 * @typedef {object} ResendEdges
 * @property {() => Promise<unknown>} send  `POST /api/execute` again; rejects with an error whose
 *   `status` is the HTTP status (0: the server cannot be reached, or did not answer in time)
 * @property {() => boolean} unsent  whether the prompt is still not known to have got through
 *   (news of the answer came, or it ended, meanwhile: nothing more to do)
 * @property {() => void} through  the server has the prompt (taken now, or before: 409)
 * @property {(ms: number) => Promise<void>} wait  until `ms` have passed, or the browser is online
 *   again
 */

/**
 * Sends the prompt again until it gets through, the server refuses it for another reason (left
 * to the answer's follower, which ends it as not sent), or there is nothing more to do. After a
 * refusal for now (503 with `Retry-After`), the next try waits at least the seconds it asked.
 * @param {ResendEdges} edges
 * @param {{retryAfter?: number | null, forMs?: number}} [options]  the first failure's
 *   `Retry-After`, if any; how long to keep trying (by the waits between tries)
 * @returns {Promise<unknown>}  the refusal that ended it (another refusal, or the last one when
 *   the time was up); undefined once it got through or there was nothing more to do
 */
export async function sendAgain({ send, unsent, through, wait }, { retryAfter = null, forMs = Infinity } = {}) {
  let asked = retryAfter; // seconds the server asked to be left alone, from its last refusal
  /** @type {unknown} */
  let last;
  let waited = 0;
  for (let delay = RESEND_MS; ; delay = Math.min(delay * 2, RESEND_MAX_MS)) {
    const ms = Math.max(delay, (asked ?? 0) * 1000);
    if (waited + ms > forMs) return last ?? new Error('it could not be sent in time');
    await wait(ms);
    waited += ms;
    if (!unsent()) return undefined;
    try {
      await send();
    } catch (error) {
      last = error;
      const { status, retryAfter: later } = /** @type {{status?: unknown, retryAfter?: unknown}} */ (error ?? {});
      if (status === 409) {
        if (unsent()) through(); // it had got through: its answer runs, or ran, there
        return undefined;
      }
      asked = status === 503 && typeof later === 'number' ? later : null;
      if (typeof status !== 'number' || NOT_THROUGH.includes(status) || asked !== null) continue;
      return error;
    }
    if (unsent()) through();
    return undefined;
  }
}

/**
 * Waits `ms`, or less if the browser comes back online meanwhile.
 * @param {number} ms
 * @returns {Promise<void>}
 */
export function untilOnline(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      globalThis.removeEventListener?.('online', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    globalThis.addEventListener?.('online', done);
  });
}
