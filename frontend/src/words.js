// @ts-check
// The page's own words for what goes wrong between it and the server. The real-time client's
// reasons ("transport closed", "no ping"), the operator's ("Centrifugo is not ready: info timed
// out"), a proxy's status text and the browser's storage errors mean nothing to a reader: they
// go to the console, and the reader is told what it means for them. The backend's own `detail`s
// are written for readers (docs/protocol.md) and are shown as they are, elsewhere.

/**
 * @typedef {object} ConnectionContext  what centrifuge-js says of a connection's change
 * @property {number} [code]
 * @property {string} [reason]
 */

/**
 * An error's message, whatever was thrown.
 * @param {unknown} error
 */
export const messageOf = (error) => (error instanceof Error ? error.message : String(error));

/**
 * Keeps a technical reason where an operator or a developer looks for it, not on the page.
 * @param {string} what
 * @param {unknown} detail
 */
export function logDetail(what, detail) {
  console.info(`relaychat: ${what}:`, detail);
}

/**
 * The status line while the connection is made again after it was lost.
 * @param {ConnectionContext} ctx  why it was lost (logged, not shown)
 * @param {number} answers  answers under way, which go on once it is back
 */
export function connectionLost(ctx, answers) {
  logDetail('connection lost', ctx);
  const after = ['', '; the answer will continue where it stopped', '; the answers will continue where they stopped'][
    Math.min(answers, 2)
  ];
  return `Connection lost. Reconnecting${after}.`;
}

/**
 * The status line once the connection is closed for good (with Retry beside it).
 * @param {ConnectionContext} ctx  why (logged, not shown)
 */
export function disconnected(ctx) {
  logDetail('disconnected', ctx);
  return 'Disconnected from the server; Retry connects again.';
}

/**
 * The status line when the live connection cannot be made and the backend says why
 * (`GET /api/ready`): not ready yet (503), or not reached at all.
 * @param {{status: number, reason: string}} ready  `reason` is the operator's (logged, not shown)
 */
export function cannotConnect(ready) {
  logDetail('the server is not ready', ready);
  return ready.status === 503
    ? 'Cannot connect: the server is not ready yet; trying again…'
    : 'Cannot connect: the server cannot be reached right now; trying again…';
}

/**
 * Why an answer ended when the real-time server refused its channel (the answer's notice: "The
 * answer failed: …").
 * @param {ConnectionContext} ctx  the refusal (logged, not shown)
 */
export function subscriptionRefused(ctx) {
  logDetail('the subscription was refused', ctx);
  return 'the server would not let the page follow it';
}

/**
 * What a failed request says when the server sent no readable reason (no `detail`: a proxy's
 * page, say), by its HTTP status: not its status text ("Bad Gateway").
 * @param {number} status
 */
export function failedStatus(status) {
  if (status === 429) return 'the server is busy with too many requests';
  if (status === 413) return 'the message is too large for the server';
  if ([502, 503, 504].includes(status)) return 'the server cannot be reached right now';
  if (status >= 500) return 'the server ran into a problem';
  return `the server refused the request (status ${status})`;
}

/** @import { StorageProblem } from './storage.js' */

/**
 * What the status line says of a storage problem: what is not saved, and what the reader can
 * do; the browser's own words for it go to the console.
 * @param {StorageProblem | null} problem
 */
export function storageNews(problem) {
  if (problem) logDetail(`storage ${problem.kind}`, problem.reason);
  switch (problem?.kind) {
    case 'unavailable':
      return 'Conversations cannot be kept in this browser (it does not let this page store them); they last until the page closes.';
    case 'full':
      return (
        "The browser's storage for this page is full: the latest changes are not saved, and are " +
        'lost if the page closes. Delete old conversations to make room; they are saved then.'
      );
    case 'unsaved':
      return (
        'The latest changes could not be saved in this browser; they are tried again at the next ' +
        'change, and lost if the page closes before.'
      );
    default:
      return '';
  }
}

/**
 * What Copy says when the clipboard refused the text.
 * @param {unknown} error  the browser's (logged, not shown)
 */
export function copyFailed(error) {
  logDetail('copy failed', error);
  return 'Could not copy: the browser did not allow it.';
}
