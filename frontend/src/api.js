// @ts-check
// The backend's HTTP API, as the page uses it. Errors carry the server's readable message.
import { readLimits } from './limits.js';
import { readSnapshot } from './received.js';

/** @import { Limits } from './limits.js' */
/** @import { HistoryTurn } from './history.js' */
/** @import { StreamSnapshot } from './follower.js' */

export class ApiError extends Error {
  /**
   * @param {number} status  the HTTP status, 0 when the server could not be reached
   * @param {string} message
   */
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** @param {Response} response */
async function readError(response) {
  try {
    const body = await response.json();
    if (body && typeof body.detail === 'string') return body.detail;
  } catch {
    // not JSON: fall through to the status text
  }
  return response.statusText || `HTTP ${response.status}`;
}

/**
 * @param {string} path
 * @param {RequestInit} init
 * @returns {Promise<unknown>}
 */
async function request(path, init) {
  let response;
  try {
    response = await fetch(path, { credentials: 'same-origin', ...init });
  } catch {
    throw new ApiError(0, 'the server cannot be reached');
  }
  if (!response.ok) throw new ApiError(response.status, await readError(response));
  try {
    return await response.json();
  } catch {
    throw new ApiError(response.status, 'the server answered with something that is not JSON');
  }
}

/**
 * @param {string} path
 * @param {object} [body]
 */
const post = (path, body) =>
  request(path, {
    method: 'POST',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

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
 * `cancelled` and its model request is closed. Rejects with status 404 when nothing runs there.
 * @param {string} channel
 */
export const cancel = (channel) => post('/api/cancel', { channel });

/**
 * The backend's copy of the answer in this user's stream `streamId` (`GET /api/streams/{id}`).
 * @param {string} streamId
 * @returns {Promise<StreamSnapshot>}
 */
export async function fetchSnapshot(streamId) {
  const body = await request(`/api/streams/${encodeURIComponent(streamId)}`, { method: 'GET' });
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
 * Whether the backend reaches the real-time server.
 * @returns {Promise<{ok: boolean, reason: string}>}
 */
export async function checkReady() {
  try {
    const response = await fetch('/api/ready', { credentials: 'same-origin' });
    return { ok: response.ok, reason: response.ok ? '' : await readError(response) };
  } catch {
    return { ok: false, reason: 'the server cannot be reached' };
  }
}
