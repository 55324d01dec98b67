// @ts-check
// Follows one answer's channel as docs/protocol.md says: chunks in `seq` order, each once; a
// snapshot from the backend when the channel's history cannot fill a gap; and, when nothing
// arrives for a while, the same snapshot to learn whether anybody still answers. Knows nothing
// of Centrifugo: the subscription feeds it events, and its edges are passed in.
import { readPublication } from './publication.js';
import { ReceivedAnswer } from './received.js';
import { messageOf } from './words.js';

/** @import { Outcome } from './publication.js' */
/** @import { Snapshot } from './received.js' */

/** How long a followed answer may be silent before the page asks whether it still runs. */
export const SILENCE_MS = 15_000;
/** After a snapshot that could not fill a gap, or a 503, the next one is asked this much later
 * (then twice that, up to the silence): not once per chunk, which the gap makes each one. */
export const RETRY_MS = 2_000;
/** How long a `done` that came before all its chunks may wait for them (the snapshot asked
 * meanwhile, as above) before the answer ends as partly lost: the backend has stopped answering
 * it, and the registry that would fill the gap may stay unreachable. */
export const PENDING_DONE_MS = 60_000;
/** How many gateway timeouts (504) in a row are waited out, as a backend paused or overloaded a
 * while, before the answer is taken for one nobody answers: about two minutes at one a silence,
 * as long as an answer may run by default (MAX_STREAM_SECONDS). Without a bound, a backend hung
 * for good behind a live subscription kept the answer "arriving" for ever (review). */
export const GATEWAY_TIMEOUTS_WAITED = 8;

/**
 * `GET /api/streams/{id}`: the answer so far, and how it ended once it did.
 * @typedef {Snapshot & {done: Outcome | null}} StreamSnapshot
 */

/**
 * @typedef {object} FollowerEdges
 * @property {() => Promise<StreamSnapshot>} readSnapshot  rejects with an error whose `status`
 *   is the HTTP status (404: no answer is known there; 0: the server cannot be reached, or did
 *   not answer in time); one whose `unsent` is true too says that the prompt never got through
 *   (its request failed on the way, and nobody has the answer): it ends as failed, with the
 *   error's message, not as an answer nobody has any more
 * @property {(answer: ReceivedAnswer) => void} show  the answer changed
 * @property {(outcome: Outcome) => void} end  called once, when the answer is over
 * @property {(message: string) => void} [unsure]  the server cannot be asked about the answer
 *   right now (why), while the answer is kept; called with '' once news came again
 * @property {number} [silenceMs]
 * @property {number} [pendingDoneMs]
 */

/** @param {unknown} error */
const statusOf = (error) => /** @type {{status?: unknown}} */ (error)?.status;

/**
 * Whether a failed snapshot says nothing about the answer: 503, the backend cannot tell right
 * now (a shared registry unreachable, or rebuilt after a Redis restart); 0, the request never got
 * an answer (this browser offline, a dead network path, a backend that hangs), which is news
 * about the way to the server, not about the answer; 504, the gateway's: the backend did not
 * answer in time (paused or overloaded a while), and its answer goes on when it resumes (taken
 * for "nobody answers", the rest of such an answer was never shown: an outside-in probe).
 * Either way it may well be running.
 * @param {unknown} error
 */
const saysNothing = (error) => {
  const status = statusOf(error);
  return status === 0 || status === 503 || status === 504;
};

/**
 * Whether a failed snapshot is a gateway's error (502, 504): the backend was not reached.
 * @param {unknown} error
 */
const isGatewayError = (error) => statusOf(error) === 502 || statusOf(error) === 504;

/**
 * The ending when the backend says that nobody answers (404), or cannot be asked (a gateway's
 * error: the backend is down). A 404 does not tell whether the server answering it stopped or
 * the answer ended and its record expired (a tab reopened minutes later): it claims neither.
 * An error marked `unsent` says more: the prompt never got through (see FollowerEdges).
 * @param {unknown} error
 * @returns {Outcome}
 */
function nobodyAnswers(error) {
  if (/** @type {{unsent?: unknown}} */ (error)?.unsent === true) return { reason: 'error', error: messageOf(error) };
  return {
    reason: 'abandoned',
    error:
      statusOf(error) === 404
        ? 'the server no longer has it (it ended more than 2 minutes ago, or the server answering it stopped)'
        : messageOf(error),
  };
}

export class AnswerFollower {
  /** @param {FollowerEdges} edges */
  constructor({
    readSnapshot,
    show,
    end,
    unsure = () => {},
    silenceMs = SILENCE_MS,
    pendingDoneMs = PENDING_DONE_MS,
  }) {
    this.readSnapshot = readSnapshot;
    this.show = show;
    this.onEnd = end;
    this.unsure = unsure;
    /** whether `unsure` was last told of a failure */
    this.saidUnsure = false;
    /** Stop was pressed and nothing runs the answer: nobody having it means it stopped */
    this.stopWanted = false;
    this.silenceMs = silenceMs;
    this.answer = new ReceivedAnswer();
    /** @type {{outcome: Outcome, seq?: number} | null} a `done` that came before all chunks did */
    this.pendingDone = null;
    this.ended = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} runs from the first news on, until the end */
    this.silenceTimer = undefined;
    /** whether the subscription is live (else connecting) */
    this.live = false;
    /** @type {ReturnType<typeof setTimeout> | undefined} the snapshot asked again, later */
    this.retryTimer = undefined;
    this.retryMs = RETRY_MS;
    this.pendingDoneMs = pendingDoneMs;
    /** time the pending `done` has waited on retries */
    this.pendingWaitedMs = 0;
    /** snapshots answered 504 in a row, with no news in between */
    this.gatewayTimeouts = 0;
  }

  /**
   * One publication from the channel.
   * @param {unknown} data
   */
  publication(data) {
    if (this.ended) return;
    this.watch();
    this.sayUnsure('');
    this.gatewayTimeouts = 0;
    const publication = readPublication(data);
    if (publication.kind === 'chunk') {
      const received = this.answer.receive(publication);
      if (received === 'shown') this.show(this.answer);
      else if (received === 'gap') this.resume();
    } else if (publication.kind === 'done') {
      if (this.answer.hasAllUpTo(publication.seq)) {
        this.finish(publication.outcome);
      } else {
        this.pendingDone = { outcome: publication.outcome, seq: publication.seq };
        // Asked at once, even while a retry waits (after a gap or a 503): the minute the done
        // may wait for its chunks counts from here.
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
        this.resume();
      }
    }
  }

  /**
   * The subscription is live (again).
   * @param {{recovered: boolean, emptyHistory: boolean, restoring: boolean}} how
   *   `recovered`: false when the history could not fill what was missed (a new epoch after a
   *   restart, or it expired); `emptyHistory` with `restoring`: an answer that was running
   *   before a reload left nothing in the channel, so its end is only in the snapshot.
   */
  subscribed({ recovered, emptyHistory, restoring }) {
    if (this.ended) return;
    this.live = true;
    this.watch();
    if (!recovered || (restoring && emptyHistory)) this.resume();
  }

  /**
   * The subscription is connecting: at first, or again after the connection dropped. The
   * silence goes on counting: an answer whose subscription cannot connect (a proxy that drops
   * WebSockets) is followed through the snapshot, asked after the same silence. Counting
   * stopped here, and such an answer showed a cursor for good though the server had all of it.
   */
  paused() {
    this.live = false;
    if (this.silenceTimer === undefined) this.watch(); // else it runs already, from the last news
  }

  /**
   * Ends it from outside (a refusal, Stop).
   * @param {Outcome} outcome
   */
  stop(outcome) {
    this.finish(outcome);
  }

  /** Asks the backend now (Stop went through, and its `done` is late to come). */
  check() {
    this.resume();
  }

  /**
   * Stop was pressed and no process runs the answer (the cancel's 404): asks the backend how it
   * ended (its `done` may be on its way, and says how); if nobody has it (its backend
   * restarted), it ends as stopped rather than as nobody answering.
   */
  settleStop() {
    this.wantStop();
    this.resume();
  }

  /**
   * Stop was pressed (its cancel may still be on its way): if the backend turns out not to have
   * the answer any more, it ends as stopped, whichever request learns that first (a snapshot
   * asked after a silence reached a restarted backend before the cancel's retry did: "Nobody
   * is answering this any more", an outside-in probe).
   */
  wantStop() {
    this.stopWanted = true;
  }

  /** @param {string} message  why the server cannot be asked right now; '' once it can */
  sayUnsure(message) {
    if (!message && !this.saidUnsure) return;
    this.saidUnsure = Boolean(message);
    this.unsure(message);
  }

  /** Restarts the silence timer. */
  watch() {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      this.watch();
      this.resume();
    }, this.silenceMs);
  }

  /** Asks the backend for the answer so far and applies it; ends the answer if it is over. */
  async resume() {
    if (this.ended || this.answer.resuming || this.retryTimer !== undefined) return;
    this.answer.beginResume();
    /** @type {StreamSnapshot} */
    let snapshot;
    try {
      snapshot = await this.readSnapshot();
    } catch (error) {
      if (this.ended) return;
      this.gatewayTimeouts = statusOf(error) === 504 ? this.gatewayTimeouts + 1 : 0;
      const waitedLongEnough = this.gatewayTimeouts >= GATEWAY_TIMEOUTS_WAITED;
      // Nothing learnt (503, 504, or no answer at all): the answer may well be running, and a
      // `done` that came before all its chunks may still be completed: keep it, ask again
      // later. So too a gateway's error while the subscription cannot connect either: the
      // whole server is restarting, most likely, and the answer is followed again once it is
      // back.
      if ((saysNothing(error) && !waitedLongEnough) || (!this.live && isGatewayError(error))) {
        this.answer.pauseResume();
        this.show(this.answer);
        this.sayUnsure(messageOf(error));
        const pending = this.pendingDone;
        if (pending && this.answer.hasAllUpTo(pending.seq)) {
          this.finish(pending.outcome); // its chunks came meanwhile: nothing is missing
        } else if (pending || this.answer.held.size > 0) {
          // Something is missing.
          this.retryOrGiveUp(messageOf(error));
        } // else nothing is: the next silence asks again
        return;
      }
      this.answer.abandonResume();
      if (this.stopWanted && statusOf(error) === 404) {
        this.finish({ reason: 'cancelled', error: '' });
        return;
      }
      this.finish(
        this.pendingDone
          ? { reason: 'lost', error: `part of it could not be recovered (${nobodyAnswers(error).error})` }
          : nobodyAnswers(error),
      );
      return;
    }
    this.sayUnsure('');
    this.gatewayTimeouts = 0;
    if (this.ended) return;
    const whole = this.answer.resumeFrom(snapshot);
    this.show(this.answer);
    const pending = this.pendingDone;
    if (pending && whole && this.answer.hasAllUpTo(pending.seq)) {
      this.finish(pending.outcome);
    } else if (snapshot.done && whole && !pending) {
      this.finish(snapshot.done);
    } else if (snapshot.done) {
      // It ended, and chunks this page does not have are in neither the channel nor the
      // snapshot: what is shown is not the whole answer, whatever the ending says.
      const why = snapshot.done.error ? ` (${snapshot.done.error})` : '';
      this.finish({ reason: 'lost', error: `part of it could not be recovered${why}` });
    } else if (!whole || pending) {
      // The snapshot lacks the gap, or the chunks before the `done`, yet: ask again later.
      this.retryOrGiveUp('the server does not have it');
    } else {
      this.retryMs = RETRY_MS; // caught up: a later gap starts again from the first delay
    }
  }

  /**
   * Asks for the snapshot again later, unless a `done` has waited its time for the chunks it
   * names: then the answer ends as partly lost.
   * @param {string} why  what the last snapshot said
   */
  retryOrGiveUp(why) {
    if (this.pendingDone !== null && this.pendingWaitedMs >= this.pendingDoneMs) {
      this.finish({ reason: 'lost', error: `part of it could not be recovered (${why})` });
    } else {
      this.retryLater();
    }
  }

  /** Asks for the snapshot again after a while (longer each time, up to the silence). */
  retryLater() {
    let delay = this.retryMs;
    if (this.pendingDone) {
      // The last wait of a pending `done` ends when its time is up, not a whole delay later.
      delay = Math.min(delay, this.pendingDoneMs - this.pendingWaitedMs);
      this.pendingWaitedMs += delay;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.resume();
    }, delay);
    this.retryMs = Math.min(this.retryMs * 2, this.silenceMs);
  }

  /** @param {Outcome} outcome */
  finish(outcome) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.silenceTimer);
    clearTimeout(this.retryTimer);
    this.sayUnsure('');
    this.onEnd(outcome);
  }
}
