// @ts-check
// Stop: telling the server to stop one answer (`POST /api/cancel`), so that it stops generating,
// and ending the answer on the page once it did. Knows nothing of the page: its edges are passed
// in (docs/protocol.md, `POST /api/cancel`).
import { browserOnline, untilOnline } from './resend.js';
import { stoppingNote } from './waiting.js';

/** A cancel that did not reach the server is sent again this much later, then twice as long each
 * time, up to CANCEL_RETRY_MAX_MS: a server that cannot be told keeps generating. */
export const CANCEL_RETRY_MS = 1_000;
export const CANCEL_RETRY_MAX_MS = 8_000;
/** How long Stop keeps trying to reach the server; then the answer is stopped on this page only
 * (the server's time limit ends it there). */
export const CANCEL_GIVE_UP_MS = 60_000;
/** After the server took the cancel, how long its `done` may take before the page asks the
 * backend's snapshot, which carries it: the real-time server may be stalled, and the `done`
 * with it, while the backend stopped at once. */
export const DONE_AFTER_CANCEL_MS = 2_000;

/** Statuses that say the cancel did not get through, rather than that it was refused: no answer
 * (offline, or no reply in time), a gateway's error (the backend restarting), 503 (a shared
 * registry unreachable). */
const NOT_THROUGH = [0, 502, 503, 504];

/**
 * @typedef {object} StopEdges
 * @property {() => Promise<unknown>} cancel  `POST /api/cancel`; rejects with an error whose
 *   `status` is the HTTP status (0: the server cannot be reached, or did not answer in time)
 * @property {() => boolean} ended  whether the answer is over (its `done` came, or it was ended
 *   otherwise meanwhile)
 * @property {(error: string) => void} stopHere  ends the answer as stopped, with what the reader
 *   should know ('' when nothing)
 * @property {() => void} check  asks the backend how the answer is going (it ends it if it did)
 * @property {() => void} settle  asks the backend how the answer ended, nothing running it; if
 *   nobody has it, it ends as stopped
 * @property {(message: string) => void} say  what Stop is doing while it cannot get through; ''
 *   once there is nothing to say
 * @property {(ms: number) => Promise<void>} [sleep]  until the next try: by default `ms`, or less
 *   once the browser is back online (a Stop pressed offline waited out its timer, up to 8 s,
 *   while the answer streamed on and ended on the server: an outside-in probe)
 * @property {() => number} [now]  milliseconds, for the time Stop keeps trying
 * @property {() => boolean} [online]  whether the browser has a network (`navigator.onLine`):
 *   the minute Stop keeps trying counts from when it last had none
 */

/**
 * Tells the server to stop the answer until it hears, the answer ends, or a minute has passed.
 * - 202: its `done` (reason `cancelled`) is on its way; asked for through the snapshot if it is
 *   late;
 * - 404: nothing runs there. Either the answer ended as Stop was pressed (its `done` is on its
 *   way, and says how it ended: so does the snapshot), or its backend restarted (no `done` is
 *   coming from anybody, and nobody has it): the backend is asked (`settle`), and the answer
 *   ends as it ended, or as stopped;
 * - not through (see NOT_THROUGH): said, and sent again later;
 * - anything else, or still not through after CANCEL_GIVE_UP_MS online: stopped here, saying
 *   that the server could not be told.
 * @param {StopEdges} edges
 */
export async function stopAnswer({
  cancel,
  ended,
  stopHere,
  check,
  settle,
  say,
  sleep = untilOnline,
  now = Date.now,
  online = browserOnline,
}) {
  let started = now();
  let delay = CANCEL_RETRY_MS;
  for (;;) {
    if (ended()) return;
    try {
      await cancel();
    } catch (error) {
      if (ended()) return;
      const status = /** @type {{status?: unknown}} */ (error)?.status;
      const message = error instanceof Error ? error.message : String(error);
      if (status === 404) {
        // Stopped here without asking, an answer that completed while its `done` was held up
        // (the very stall that made the reader press Stop) was kept as stopped, cut short.
        say('');
        settle();
        return;
      }
      // Offline, the server cannot be told: Stop waits for the network rather than stop the
      // answer here only (the server went on to complete it, and the page kept it cut short
      // as stopped: an outside-in probe), and the minute starts once it is back.
      if (!online() && Number(status) === 0) started = now(); // a reply is from the network
      if (!NOT_THROUGH.includes(Number(status)) || now() - started >= CANCEL_GIVE_UP_MS) {
        say('');
        stopHere(`the server could not be told (${message})`);
        return;
      }
      say(stoppingNote(message));
      await sleep(delay);
      delay = Math.min(delay * 2, CANCEL_RETRY_MAX_MS);
      continue;
    }
    say('');
    await sleep(DONE_AFTER_CANCEL_MS);
    if (!ended()) check();
    return;
  }
}
