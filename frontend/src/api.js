// @ts-check
// The backend's HTTP API, as the page uses it. Errors carry the server's readable message.
import { readLimits } from './limits.js';
import { readSnapshot } from './received.js';
import { browserOnline } from './resend.js';
import { failedStatus } from './words.js';

/** @import { Limits } from './limits.js' */
/** @import { HistoryTurn } from './history.js' */
/** @import { StreamSnapshot } from './follower.js' */

/** How long the page waits for the backend's reply to a snapshot or a cancel before it takes the
 * server as unreachable for now (status 0, asked again later): a backend that hangs would
 * otherwise hold the request for nginx's 300 s, and the page with it. */
export const REQUEST_TIMEOUT_MS = 10_000;

export class ApiError extends Error {
  /**
   * @param {number} status  the HTTP status, 0 when the server could not be reached
   * @param {string} message
   * @param {number | null} [retryAfter]  seconds, from the refusal's `Retry-After` (null: none)
   */
  constructor(status, message, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

/**
 * A `Retry-After` of whole seconds; null for none, or for one the page does not read (a date).
 * @param {string | null} header
 */
export const retryAfterOf = (header) => (header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : null);

/** @param {Response} response */
async function readError(response) {
  try {
    const body = await response.json();
    if (body && typeof body.detail === 'string') return body.detail;
  } catch {
    // not JSON (a proxy's page): the page's own words for its status
  }
  return failedStatus(response.status);
}

/**
 * Why a request got no reply: this browser has no network (an outside-in probe: the notes said
 * the server could not be reached while the browser itself was offline), or the server cannot
 * be reached.
 */
export const unreachableWords = () =>
  browserOnline() ? 'the server cannot be reached' : 'this browser is offline';

/**
 * @param {string} path
 * @param {RequestInit} init
 * @param {number} [timeoutMs]  how long to wait for the whole reply; none by default
 * @returns {Promise<unknown>}
 */
async function request(path, init, timeoutMs) {
  const signal = timeoutMs === undefined ? undefined : AbortSignal.timeout(timeoutMs);
  // A reply that did not come in time is no news from the server, like one that did not come.
  const unreachable = () =>
    signal?.aborted
      ? new ApiError(0, `the server did not answer within ${(timeoutMs ?? 0) / 1000} s`)
      : new ApiError(0, unreachableWords());
  let response;
  try {
    response = await fetch(path, { credentials: 'same-origin', ...init, signal });
  } catch {
    throw unreachable();
  }
  if (!response.ok) {
    const message = await readError(response);
    if (signal?.aborted) throw unreachable(); // its body was cut off
    throw new ApiError(response.status, message, retryAfterOf(response.headers.get('Retry-After')));
  }
  try {
    return await response.json();
  } catch {
    if (signal?.aborted) throw unreachable();
    throw new ApiError(response.status, 'the server answered with something that is not JSON');
  }
}

/**
 * @param {string} path
 * @param {object} [body]
 * @param {number} [timeoutMs]
 */
const post = (path, body, timeoutMs) =>
  request(
    path,
    {
      method: 'POST',
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    },
    timeoutMs,
  );

/**
 * A connection token and the user it is for.
 * @typedef {object} Session
 * @property {string} token
 * @property {string} user
 */

/**
 * A fresh connection token and the user it is for (`POST /api/token`).
 * @returns {Promise<Session>}
 */
export async function fetchToken() {
  const body = /** @type {{token?: unknown, user?: unknown}} */ (await post('/api/token'));
  if (typeof body?.token !== 'string' || typeof body.user !== 'string') {
    throw new ApiError(200, 'the server sent a session the page cannot read');
  }
  return { token: body.token, user: body.user };
}

/**
 * The limits the prompt endpoints apply (`GET /api/config`).
 * @returns {Promise<Limits>}
 */
export async function fetchConfig() {
  const body = await request('/api/config', { method: 'GET' });
  try {
    return readLimits(body);
  } catch (error) {
    throw new ApiError(200, /** @type {Error} */ (error).message);
  }
}

/**
 * Starts an answer streaming into `channel`; resolves once the backend accepted it (202).
 * @param {{text: string, channel: string, thinking: boolean, history: HistoryTurn[]}} prompt
 */
export const execute = ({ text, channel, thinking, history }) =>
  post('/api/execute', { text, channel, thinking, history });

/**
 * Stops the answer streaming into `channel` (`POST /api/cancel`): it ends with `done` reason
 * `cancelled` and its model request is closed. Rejects with status 404 when nothing runs there,
 * and with status 0 when the server cannot be reached or does not answer within `timeoutMs`.
 * @param {string} channel
 * @param {{timeoutMs?: number}} [options]
 */
export const cancel = (channel, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) =>
  post('/api/cancel', { channel }, timeoutMs);

/**
 * The backend's copy of the answer in this user's stream `streamId` (`GET /api/streams/{id}`).
 * Rejects with status 0 when the server cannot be reached or does not answer within `timeoutMs`.
 * @param {string} streamId
 * @param {{timeoutMs?: number}} [options]
 * @returns {Promise<StreamSnapshot>}
 */
export async function fetchSnapshot(streamId, { timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
  const body = await request(`/api/streams/${encodeURIComponent(streamId)}`, { method: 'GET' }, timeoutMs);
  try {
    return readSnapshot(body);
  } catch (error) {
    throw new ApiError(200, /** @type {Error} */ (error).message);
  }
}

/**
 * Whether a failed `execute` may still have been accepted: the reply was lost on the way
 * (no answer, or a gateway's error), so the answer may be streaming all the same.
 * @param {unknown} error
 */
export const mayHaveBeenAccepted = (error) =>
  !(error instanceof ApiError) || [0, 502, 504].includes(error.status);

/**
 * Whether a failed `execute` was refused for now: 503 with `Retry-After`, the server took
 * nothing and asks to be asked again shortly (it is stopping for a restart, letting its running
 * answers finish, or is running as many answers as it can).
 * @param {unknown} error
 */
export const refusedForNow = (error) => error instanceof ApiError && error.status === 503 && error.retryAfter !== null;

/**
 * Whether a failed `execute` refused the prompt as it was sent: 422 (too long, blank once
 * trimmed, a history the server does not take) or 413 (a body over the size limit). The same
 * prompt sent again would be refused again: it is to be edited, not retried. Anything else
 * (409, 429, 503, ...) may go through another time.
 * @param {unknown} error
 */
export const refusedAsItIs = (error) => error instanceof ApiError && [413, 422].includes(error.status);

/**
 * What a failed snapshot means for a prompt whose `execute` failed on the way (see
 * `mayHaveBeenAccepted`): a backend with no answer there (404), or still out of reach (a
 * gateway's 502), never got the prompt. Such an error comes back marked `unsent`, in the
 * reader's words (the follower ends the answer as not sent, not as one nobody has any more);
 * any other is passed on as it is (no reply at all, a 503, a gateway's 504, a backend too slow
 * to answer that may yet take the prompt: nothing learnt, asked again later).
 * @param {unknown} error
 * @param {string} [refusedFor]  the server's words when it refused the prompt for now (said
 *   instead of "the server could not be reached")
 * @returns {unknown}
 */
export function asNotSent(error, refusedFor = '') {
  if (!(error instanceof ApiError) || ![404, 502].includes(error.status)) return error;
  const why = refusedFor ? `: ${refusedFor}` : ', as the server could not be reached';
  const notSent = new ApiError(error.status, `the prompt could not be sent${why}`);
  return Object.assign(notSent, { unsent: true });
}

/**
 * Whether the backend reaches the real-time server; `status` is 0 when the backend could not be
 * reached, `reason` the backend's (for the operator: "Centrifugo is not ready: …").
 * @returns {Promise<{ok: boolean, status: number, reason: string}>}
 */
export async function checkReady() {
  try {
    const response = await fetch('/api/ready', { credentials: 'same-origin' });
    return { ok: response.ok, status: response.status, reason: response.ok ? '' : await readError(response) };
  } catch {
    return { ok: false, status: 0, reason: unreachableWords() };
  }
}
