// @ts-check
// The backend's API as the page uses it: a reply that does not come counts as no answer at all.
import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import {
  ApiError,
  REQUEST_TIMEOUT_MS,
  asNotSent,
  cancel,
  execute,
  fetchSnapshot,
  refusedForNow,
  retryAfterOf,
} from '../src/api.js';

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

/** A backend that takes every request and never answers (a hung process behind nginx). */
function hangingBackend() {
  /** @type {(AbortSignal | null | undefined)[]} */
  const signals = [];
  globalThis.fetch = async (_input, init) => {
    signals.push(init?.signal);
    return new Promise((_resolve, reject) => {
      init?.signal?.addEventListener('abort', () => reject(init.signal?.reason));
    });
  };
  return signals;
}

/**
 * @param {Promise<unknown>} request
 * @returns {Promise<ApiError>}
 */
async function failure(request) {
  // AbortSignal.timeout's timer does not keep Node running: this one does, meanwhile.
  const keepAlive = setTimeout(() => {}, 5_000);
  try {
    await request;
  } catch (error) {
    assert.ok(error instanceof ApiError, String(error));
    return error;
  } finally {
    clearTimeout(keepAlive);
  }
  throw new Error('it did not fail');
}

test('a snapshot the backend does not answer fails in time, as an unreachable server (status 0)', async () => {
  // Probe: a hung backend left the page silent for nginx's 300 s.
  const signals = hangingBackend();
  const error = await failure(fetchSnapshot('abcdefgh', { timeoutMs: 20 }));
  assert.equal(error.status, 0);
  assert.equal(error.message, 'the server did not answer within 0.02 s');
  assert.equal(signals.length, 1);
});

test('a cancel the backend does not answer fails in time too', async () => {
  hangingBackend();
  const error = await failure(cancel('stream:abcdefgh#u_1', { timeoutMs: 20 }));
  assert.equal(error.status, 0);
});

test('snapshots and cancels wait about ten seconds by default, not minutes', async () => {
  const signals = hangingBackend();
  fetchSnapshot('abcdefgh').catch(() => {});
  cancel('stream:abcdefgh#u_1').catch(() => {});
  assert.equal(REQUEST_TIMEOUT_MS, 10_000);
  assert.equal(signals.length, 2);
  assert.ok(signals.every((signal) => signal instanceof AbortSignal && !signal.aborted));
});

test('a fetch that fails at once is status 0; an answer keeps its status and detail', async () => {
  globalThis.fetch = async () => {
    throw new TypeError('Failed to fetch');
  };
  assert.equal((await failure(fetchSnapshot('abcdefgh'))).status, 0);
  globalThis.fetch = async () => Response.json({ detail: 'no answer is known for this stream' }, { status: 404 });
  const error = await failure(fetchSnapshot('abcdefgh'));
  assert.equal(error.status, 404);
  assert.equal(error.message, 'no answer is known for this stream');
});

test('a fetch that fails in a browser without a network says so, not that the server is down', async () => {
  // probe83: every note said "the server cannot be reached" while the browser itself was offline.
  globalThis.fetch = async () => {
    throw new TypeError('Failed to fetch');
  };
  const had = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  Object.defineProperty(globalThis, 'navigator', { value: { onLine: false }, configurable: true });
  try {
    const error = await failure(fetchSnapshot('abcdefgh'));
    assert.deepEqual([error.status, error.message], [0, 'this browser is offline']);
  } finally {
    if (had) Object.defineProperty(globalThis, 'navigator', had);
    else delete (/** @type {Record<string, unknown>} */ (globalThis)).navigator;
  }
  assert.equal((await failure(fetchSnapshot('abcdefgh'))).message, 'the server cannot be reached');
});

test('a prompt whose request failed on the way, and that the backend does not have, was not sent', () => {
  for (const status of [404, 502]) {
    const error = /** @type {ApiError & {unsent?: boolean}} */ (asNotSent(new ApiError(status, 'Bad Gateway')));
    assert.equal(error.unsent, true);
    assert.equal(error.status, status);
    assert.equal(error.message, 'the prompt could not be sent, as the server could not be reached');
  }
  // No reply at all, a backend that cannot tell right now or is too slow to answer (a gateway's
  // 504: it may yet take the prompt): nothing learnt, asked again later.
  for (const status of [0, 503, 504]) {
    const error = new ApiError(status, 'the server cannot be reached');
    assert.equal(asNotSent(error), error);
  }
});

test('a prompt refused for now (503 with Retry-After: a restart, a full server) is known as such', async () => {
  const detail = 'the server is stopping; nothing was started, please send the prompt again';
  globalThis.fetch = async () => Response.json({ detail }, { status: 503, headers: { 'Retry-After': '5' } });
  const prompt = { text: 'hi', channel: 'stream:abcdefgh#u_1', thinking: false, history: [] };
  const error = await failure(execute(prompt));
  assert.deepEqual([error.status, error.message, error.retryAfter], [503, detail, 5]);
  assert.equal(refusedForNow(error), true);
  // A 503 without it (Centrifugo cannot be reached), or another status with it, is not.
  globalThis.fetch = async () => Response.json({ detail: 'answers cannot be delivered' }, { status: 503 });
  assert.equal(refusedForNow(await failure(execute(prompt))), false);
  assert.equal(refusedForNow(new ApiError(429, 'too many', 5)), false);
  // Ending as not sent, it says the server's words, not that it could not be reached.
  const notSent = /** @type {ApiError} */ (asNotSent(new ApiError(404, 'no answer'), detail));
  assert.equal(notSent.message, `the prompt could not be sent: ${detail}`);
});

test('a Retry-After is read in whole seconds; a date or nonsense is none', () => {
  assert.equal(retryAfterOf('5'), 5);
  assert.equal(retryAfterOf(' 12 '), 12);
  assert.equal(retryAfterOf(null), null);
  assert.equal(retryAfterOf('Wed, 21 Oct 2026 07:28:00 GMT'), null);
  assert.equal(retryAfterOf('-1'), null);
  assert.equal(retryAfterOf(''), null);
});

test("a refusal without the server's readable reason says what its status means, not the status text", async () => {
  // A proxy in front of nginx answering with its own page: "Bad Gateway" reached the reader.
  globalThis.fetch = async () =>
    new Response('<html><body><h1>502 Bad Gateway</h1></body></html>', {
      status: 502,
      statusText: 'Bad Gateway',
      headers: { 'Content-Type': 'text/html' },
    });
  const error = await failure(cancel('stream:abcdefgh#u_1'));
  assert.equal(error.status, 502);
  assert.equal(error.message, 'the server cannot be reached right now');
});

test("the server's own readable reason is kept as it is", async () => {
  globalThis.fetch = async () =>
    Response.json({ detail: 'the streams registry cannot be reached' }, { status: 503, statusText: 'Service Unavailable' });
  const error = await failure(cancel('stream:abcdefgh#u_1'));
  assert.equal(error.message, 'the streams registry cannot be reached');
});
