// @ts-check
// An answer whose prompt may not have got through: its request failed on the way (no reply, a
// gateway's error), or the server refused it for now (503 with Retry-After: restarting, or
// full). What the reader is told meanwhile, the mark kept with its turn (so that a page opened
// before it got through sends it again), the sending again (resend.js) and how that ends. Knows
// nothing of the page: its edges are passed in.

import { browserOnline, mayHaveGotThrough, sendAgain, untilOnline } from './resend.js';
import { messageOf } from './words.js';

/** @import { AssistantTurn, Resend, Turn } from './conversation.js' */

/** How long after a prompt was first sent it may be sent again, here or by a page opened later:
 * a restart lets running answers finish for up to 30 s by default (SHUTDOWN_DRAIN_SECONDS), then
 * starts again. Under the 2 minutes the server keeps a used channel: sent again within them, a
 * prompt that did get through is refused (409) there, never answered twice. */
export const RESEND_FOR_MS = 90_000;

export const LOST_ON_THE_WAY =
  'The server could not be reached, so the prompt may not have got through; waiting in case it did.';
export const SENT_OFFLINE = 'This browser is offline: the prompt is sent once the network is back.';
export const REFUSED_FOR_NOW =
  'The server is restarting or busy and took nothing yet; the prompt is sent again as soon as it can take it.';

/**
 * The part of an answer being followed (main.js's `Run`) that this reads and writes.
 * @typedef {object} Unsure
 * @property {string} channel
 * @property {boolean} stopping  Stop was pressed on it
 * @property {Promise<unknown>} accepted  the reply to the last `POST /api/execute` sent for it
 * @property {{unsure: string}} notes  `unsure`: what is said of its prompt meanwhile
 * @property {{check: () => void, stop: (reason: string, error: string) => void}} subscription
 *   its follower: `check` asks the answer's snapshot now; `stop` ends it here
 * @property {boolean} [heard]  news of it came from the server: its prompt got through
 * @property {boolean} [unsent]  its prompt's request failed on the way, and no news came since
 * @property {string} [refusedFor]  why the server refused its prompt for now, while it is sent
 *   again
 * @property {boolean} [resending]  while its prompt is unsent, the resending decides when to give
 *   up on it, not the follower (see `keepSending`)
 * @property {boolean} [neverReached]  no send of its prompt has left the browser (each was made
 *   without a network): nothing of it is on the server
 */

/**
 * @typedef {object} UnsentEdges
 * @property {(run: Unsure) => void} showNotes  says the answer's notes (they changed)
 * @property {(run: Unsure, resend: Resend | null) => void} mark  keeps with the answer's turn
 *   that its prompt waits to be sent again (null: no longer)
 * @property {(run: Unsure) => boolean} following  whether the page still follows this answer
 * @property {(run: Unsure, error: unknown) => void | Promise<void>} [endForSession]  ends the answer when a resend
 *   was refused for its session (401, or 403: the channel is another session's user's), with
 *   the session started again; without it, such an answer ends as refused with the server's words
 * @property {(run: Unsure) => Promise<boolean>} [endedElsewhere]  asked before each resend, and
 *   once one got through: whether another tab of the page pressed Stop on the answer meanwhile
 *   (as kept with its turn), having stopped it here too if so; no resend goes out then
 * @property {(ms: number, options: {early: boolean}) => Promise<void>} [wait]  see resend.js
 * @property {() => number} [now]  milliseconds since the epoch
 * @property {() => boolean} [online]  whether the browser has a network (`navigator.onLine`): a
 *   prompt sent without one cannot have got through
 */

/**
 * Whether the server refused a request for its session: none (401), or the channel is another
 * user's (403: another tab started a new session with the shared cookie).
 * @param {unknown} error
 */
export const forSession = (error) => [401, 403].includes(/** @type {{status?: number}} */ (error)?.status ?? 0);

/**
 * Whether `run`'s prompt waits to be sent again, with the resending (not the follower) to say
 * when to give up on it: the server has nothing of it, so its snapshot says nothing about it.
 * @param {Unsure} run
 */
export const waitsToBeSentAgain = (run) => Boolean(run.resending && run.unsent && !run.stopping);

/**
 * @param {UnsentEdges} edges
 */
export function unsentPrompts({
  showNotes,
  mark,
  following,
  endForSession = (run, error) => run.subscription.stop('refused', messageOf(error)),
  endedElsewhere = async () => false,
  online = browserOnline,
  wait = (ms, { early }) => (early ? untilOnline(ms) : new Promise((resolve) => setTimeout(resolve, ms))),
  now = Date.now,
}) {
  /**
   * The prompt's request failed on the way (no reply, or a gateway's error): it may have got
   * through all the same, so the answer is still followed, and the reader is told at once
   * rather than after the silence (15 s of a blinking cursor).
   * @param {Unsure} run
   * @param {string} [note]  what the reader is told (SENT_OFFLINE: it cannot have got through)
   */
  function lost(run, note = LOST_ON_THE_WAY) {
    if (run.heard) return; // it did: the answer is arriving
    run.unsent = true;
    run.notes.unsure = note;
    showNotes(run);
  }

  /**
   * The server refused the prompt for now: it is sent again shortly, and the reader told so
   * rather than handed a Retry to press.
   * @param {Unsure} run
   * @param {string} why  the server's words
   */
  function refused(run, why) {
    if (run.heard) return; // it got through meanwhile (sent again from an earlier page)
    run.unsent = true;
    run.refusedFor = why;
    run.notes.unsure = REFUSED_FOR_NOW;
    showNotes(run);
  }

  /**
   * News of the answer came from the server: its prompt got through.
   * @param {Unsure} run
   */
  function through(run) {
    run.heard = true;
    if (!run.unsent) return;
    run.unsent = false;
    run.resending = false;
    run.notes.unsure = '';
    showNotes(run);
    mark(run, null);
    // Stop pressed in another tab while the send that got through was on its way: the answer
    // it started is stopped from here (a review: it ran to its end). Asked here, not after the
    // 202 alone: the answer's first chunk may come before it.
    void endedElsewhere(run);
  }

  /**
   * The resending is over and the prompt is not known to have got through. A refusal says how
   * it ended; without one (no reply, a gateway's error, out of time before any) the answer's
   * snapshot says whether it got through after all.
   * @param {Unsure} run
   * @param {unknown} ended  what `sendAgain` ended with
   * @returns {void | Promise<void>}  once it has ended (a new session asked for, first)
   */
  function giveUp(run, ended) {
    if (!following(run) || !run.unsent || run.stopping || !run.resending) return;
    mark(run, null);
    if (ended === undefined || mayHaveGotThrough(ended)) {
      run.resending = false;
      run.subscription.check();
    } else if (forSession(ended)) {
      return endForSession(run, ended);
    } else {
      run.subscription.stop('refused', messageOf(ended));
    }
  }

  /**
   * Sends `run`'s prompt again (to the same channel: never two answers) once the network is
   * back, or once the time the server asked to be left alone has passed, until RESEND_FOR_MS
   * after it was first sent; not once the reader pressed Stop. Kept with its turn meanwhile, so
   * that a page opened before it got through (a reload) sends it again too. A prompt lost on the
   * way in this page is left to the follower to give up on, as the server's snapshot says; one
   * refused for now, or taken up again after a reload, to the resending (see `giveUp`).
   * @param {Unsure} run
   * @param {{thinking: boolean, send: () => Promise<unknown>}} prompt  `send`: `POST /api/execute`
   * @param {{refusedFor?: string, retryAfter?: number | null, since?: number, restored?: boolean, reached?: boolean}} [why]
   *   `refusedFor`: the server's words when it refused it for now; `retryAfter`: the seconds it
   *   asked; `since`: when it was first sent; `restored`: taken up again from storage;
   *   `reached`: false when it was first sent without a network (it cannot have got through:
   *   the RESEND_FOR_MS count from the first send with one, and it is sent again once the
   *   network is back however long that takes; it was dropped after 90 s offline, while the
   *   page said nothing was lost: an outside-in probe)
   * @returns {Promise<void>}  once the resending is over
   */
  function keepSending(
    run,
    { thinking, send },
    { refusedFor = '', retryAfter = null, since = now(), restored = false, reached = true } = {},
  ) {
    if (run.stopping) return Promise.resolve();
    if (refusedFor) refused(run, refusedFor);
    else lost(run, reached ? LOST_ON_THE_WAY : SENT_OFFLINE);
    if (!run.unsent) return Promise.resolve(); // news came meanwhile: it got through
    // Sent without a network, the server cannot have it: its snapshot says nothing of it either.
    run.resending = Boolean(refusedFor) || restored || !reached;
    /** The first send that may have reached the server; null while none has. */
    let reachedAt = reached ? since : null;
    run.neverReached = !reached;
    /** @param {number} at */
    const reachedNow = (at) => {
      if (reachedAt !== null) return;
      reachedAt = at;
      run.neverReached = false;
      if (run.notes.unsure === SENT_OFFLINE) lost(run); // the network is back: it may be the server
    };
    mark(run, { thinking, refusedFor, since, ...(reached ? {} : { reached: false }) });
    return sendAgain(
      {
        send: () => {
          if (reachedAt === null) {
            if (online()) reachedNow(now());
            // Kept as sent now: a page opened later sends it again within its time from here.
            const kept = reachedAt === null ? { since: now(), reached: /** @type {const} */ (false) } : { since: reachedAt };
            mark(run, { thinking, refusedFor: run.refusedFor ?? '', ...kept });
          }
          const sending = send();
          // Any reply is from the network (a browser may say it is offline while it reaches a
          // server on this machine): the 90 s count from here.
          const sentAt = now();
          sending.catch((error) => {
            if (typeof error?.status === 'number' && error.status !== 0) reachedNow(sentAt);
          });
          // Stop waits for a send on its way before it cancels: its 202 may start the answer.
          run.accepted = sending.catch(() => {});
          return sending;
        },
        unsent: () => following(run) && Boolean(run.unsent) && !run.stopping,
        through: () => through(run),
        goOn: async () => {
          if (!(await endedElsewhere(run))) return true;
          run.resending = false; // stopped there: nothing more for the resending to say
          return false;
        },
        wait,
        refusedForNow: (error) => {
          if (run.refusedFor) return;
          // Lost on the way, then refused for now: the resending decides from here.
          run.resending = true;
          refused(run, messageOf(error));
          mark(run, { thinking, refusedFor: messageOf(error), since: reachedAt ?? now() });
        },
        now,
      },
      { retryAfter, deadline: () => (reachedAt ?? now()) + RESEND_FOR_MS },
    ).then(
      (ended) => giveUp(run, ended),
      (error) => giveUp(run, error),
    );
  }

  /**
   * A restored answer whose prompt had not got through when the page was left (it was being
   * sent again): sent again from here, within RESEND_FOR_MS of its first sending; not once Stop
   * was pressed on it. Past that, or when some of the answer was kept (it got through), the
   * follower says how it ended.
   * @param {AssistantTurn} turn
   * @param {Unsure} run  following `turn`'s answer
   * @param {readonly Turn[]} turns  its conversation's
   * @param {(text: string, earlier: readonly Turn[], thinking: boolean) => Promise<unknown>} send
   *   sends the prompt `text` again, with the turns before it
   * @returns {Promise<void>}  once the resending, if any, is over
   */
  function restore(turn, run, turns, send) {
    const resend = turn.resend;
    if (!resend || turn.stopPressed) return Promise.resolve();
    const index = turns.findIndex((t) => t.role === 'assistant' && t.channel === turn.channel);
    const prompt = turns[index - 1];
    const arrived = Boolean(turn.answer || turn.thinking);
    const late = resend.reached !== false && now() >= resend.since + RESEND_FOR_MS;
    if (arrived || prompt?.role !== 'user' || late) {
      mark(run, null);
      if (!arrived) {
        run.unsent = true; // a snapshot that says nothing runs there: it was not sent
        run.refusedFor = resend.refusedFor || undefined;
      }
      return Promise.resolve();
    }
    const earlier = turns.slice(0, index - 1);
    const { thinking, refusedFor, since } = resend;
    const reached = resend.reached !== false;
    return keepSending(run, { thinking, send: () => send(prompt.text, earlier, thinking) }, { refusedFor, since, restored: true, reached });
  }

  return { lost, refused, through, keepSending, restore };
}
