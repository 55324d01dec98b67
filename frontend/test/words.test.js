// @ts-check
// The page's own words for what goes wrong between it and the server (src/words.js): a probe
// found "Connection lost (transport closed)", "Cannot connect: the real-time server is not
// available (Centrifugo is not ready: info timed out)" and the browser's storage errors shown
// to chat users. The technical reason goes to the console instead.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';

import { cannotConnect, connectionLost, copyFailed, disconnected, failedStatus, storageNews, subscriptionRefused } from '../src/words.js';

const realInfo = console.info;
/** @type {unknown[][]} */
let logged = [];
beforeEach(() => {
  logged = [];
  console.info = (...args) => logged.push(args);
});
afterEach(() => {
  console.info = realInfo;
});

const JARGON = /transport|centrifugo|timed out|permission denied|InvalidStateError|NotAllowedError|Bad Gateway|HTTP \d/i;

test("a lost connection says what the reader needs, not the client library's reason", () => {
  const transport = { code: 1, reason: 'transport closed' };
  assert.equal(connectionLost(transport, 0), 'Connection lost. Reconnecting.');
  assert.equal(connectionLost(transport, 1), 'Connection lost. Reconnecting; the answer will continue where it stopped.');
  assert.equal(connectionLost({ code: 2, reason: 'no ping' }, 3), 'Connection lost. Reconnecting; the answers will continue where they stopped.');
  assert.doesNotMatch(connectionLost(transport, 1), JARGON);
  assert.ok(JSON.stringify(logged).includes('transport closed'), 'the reason is kept in the console');

  const closed = disconnected({ code: 3500, reason: 'invalid token' });
  assert.equal(closed, 'Disconnected from the server; Retry connects again.');
  assert.ok(JSON.stringify(logged).includes('invalid token'));
});

test("a server that is not ready is said plainly, not with the operator's reason", () => {
  const notReady = cannotConnect({ status: 503, reason: 'Centrifugo is not ready: info timed out' });
  assert.equal(notReady, 'Cannot connect: the server is not ready yet; trying again…');
  assert.doesNotMatch(notReady, JARGON);
  assert.ok(JSON.stringify(logged).includes('Centrifugo is not ready: info timed out'));
  for (const status of [0, 502, 504]) {
    assert.equal(
      cannotConnect({ status, reason: 'the server cannot be reached' }),
      'Cannot connect: the server cannot be reached right now; trying again…',
    );
  }
});

test('a refused subscription ends its answer in plain words', () => {
  const why = subscriptionRefused({ code: 103, reason: 'permission denied' });
  assert.equal(why, 'the server would not let the page follow it');
  assert.ok(JSON.stringify(logged).includes('permission denied'));
});

test("a failed request with no readable reason says what its status means, not the proxy's status text", () => {
  assert.equal(failedStatus(502), 'the server cannot be reached right now');
  assert.equal(failedStatus(503), 'the server cannot be reached right now');
  assert.equal(failedStatus(500), 'the server ran into a problem');
  assert.equal(failedStatus(429), 'the server is busy with too many requests');
  assert.equal(failedStatus(418), 'the server refused the request (status 418)');
});

test("storage problems and a refused copy leave the browser's own words to the console", () => {
  const reason = 'InvalidStateError: A mutation operation was attempted on a database that did not allow mutations.';
  for (const kind of /** @type {const} */ (['unavailable', 'full', 'unsaved'])) {
    const news = storageNews({ kind, reason });
    assert.ok(news, kind);
    assert.doesNotMatch(news, JARGON, kind);
  }
  assert.equal(storageNews(null), '');
  assert.ok(JSON.stringify(logged).includes('InvalidStateError'));
  const copy = copyFailed(new Error('NotAllowedError: Write permission denied.'));
  assert.equal(copy, 'Could not copy: the browser did not allow it.');
});
