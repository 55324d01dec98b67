// @ts-check
// The channel an answer is published on: `stream:<id>#<user>`, a fresh `<id>` for every prompt.

/**
 * A fresh stream id: 32 characters of `[0-9a-f]`, within the 8-64 of `[A-Za-z0-9_-]` allowed.
 * From `crypto.getRandomValues`, which pages served over plain HTTP have too (`randomUUID` needs
 * a secure context).
 */
export const newStreamId = () =>
  Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');

/**
 * The channel of one answer for `user`. The `#` makes it user-limited: only that user's
 * connection may subscribe to it.
 * @param {string} streamId
 * @param {string} user
 */
export const answerChannel = (streamId, user) => `stream:${streamId}#${user}`;

/**
 * The stream id in an answer's channel (what `GET /api/streams/{id}` takes).
 * @param {string} channel
 */
export const streamIdOf = (channel) => channel.slice('stream:'.length).split('#', 1)[0];

/**
 * The user an answer's channel belongs to (only that user's connection may subscribe to it).
 * @param {string} channel
 */
export const channelUser = (channel) => channel.slice(channel.indexOf('#') + 1);
