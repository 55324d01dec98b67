// @ts-check
// The channel each answer is published on.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { answerChannel, channelUser, newStreamId, streamIdOf } from '../src/channel.js';

// docs/protocol.md: `stream:<id>#<user>`, `<id>` 8-64 of `[A-Za-z0-9_-]`.
const CHANNEL = /^stream:[A-Za-z0-9_-]{8,64}#(.+)$/;

test("an answer's channel is the user's own, in the stream namespace", () => {
  const channel = answerChannel(newStreamId(), 'user-42');
  assert.match(channel, CHANNEL);
  assert.equal(channel.match(CHANNEL)?.[1], 'user-42');
  assert.equal(answerChannel('abcdefgh', 'u'), 'stream:abcdefgh#u');
});

test('every prompt gets a channel of its own', () => {
  const ids = new Set(Array.from({ length: 1000 }, () => newStreamId()));
  assert.equal(ids.size, 1000);
});

test("a channel's user and stream id are read back from it", () => {
  const channel = answerChannel('abcdefgh', 'u_42');
  assert.equal(channelUser(channel), 'u_42');
  assert.equal(streamIdOf(channel), 'abcdefgh');
});
