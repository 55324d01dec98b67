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
 *   (news of the answer came, or it ended, or Stop was pressed, meanwhile: nothing more to do)
 * @property {() => void} through  the server has the prompt (taken now, or before: 409)
 * @property {(ms: number, options: {early: boolean}) => Promise<void>} wait  until `ms` have
 *   passed; with `early`, less if the browser is online again (not when the server asked for the
 *   time: it did answer)
 * @property {(error: unknown) => void} [refusedForNow]  the server refused it for now (503 with
 *   `Retry-After`)
 * @property {() => Promise<boolean>} [goOn]  asked before each send, after `unsent`: false ends
 *   the resending (the answer was ended or stopped elsewhere meanwhile)
 * @property {() => number} [now]  milliseconds, for the deadline
 */

/**
 * Sends the prompt again until it gets through, the server refuses it for another reason, there
 * is nothing more to do, or the next try would come after `deadline`. After a refusal for now
 * (503 with `Retry-After`), the next try waits at least the seconds it asked.
 * @param {ResendEdges} edges
 * @param {{retryAfter?: number | null, deadline?: number | (() => number)}} [options]  `retryAfter`:
 *   the first failure was a refusal for now that asked this many seconds; `deadline`: by `now`
 *   (or what a function of it says at each try: it may move)
 * @returns {Promise<unknown>}  the error that ended it (a refusal not for now, or the last failure
 *   when the time was up: none if nothing was sent); undefined once it got through or there was
 *   nothing more to do
 */
export async function sendAgain(
  { send, unsent, through, wait, refusedForNow = () => {}, goOn = async () => true, now = Date.now },
  { retryAfter = null, deadline = Infinity } = {},
) {
  let asked = retryAfter; // seconds the server asked to be left alone, from its last refusal
  /** @type {unknown} */
  let last;
  for (let delay = RESEND_MS; ; delay = Math.min(delay * 2, RESEND_MAX_MS)) {
    const ms = Math.max(delay, (asked ?? 0) * 1000);
    if (now() + ms > (typeof deadline === 'function' ? deadline() : deadline)) return last;
    await wait(ms, { early: asked === null });
    if (!unsent() || !(await goOn()) || !unsent()) return undefined;
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
      if (asked !== null) {
        refusedForNow(error);
        continue;
      }
      if (typeof status !== 'number' || NOT_THROUGH.includes(status)) continue;
      return error;
    }
    if (unsent()) through();
    return undefined;
  }
}

/**
 * Whether the error that ended a resending may hide a prompt that got through all the same (no
 * answer, a gateway's error): then the answer's snapshot says, not the resending.
 * @param {unknown} error
 */
export const mayHaveGotThrough = (error) => {
  const status = /** @type {{status?: unknown}} */ (error)?.status;
  return typeof status !== 'number' || NOT_THROUGH.includes(status);
};

/** Whether the browser says it has a network (`navigator.onLine`; true where there is none to
 * ask). */
export const browserOnline = () => globalThis.navigator?.onLine !== false;

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
