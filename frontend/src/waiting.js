// @ts-check
// What the page says while it waits out a server that does not answer and tries again by itself
// (the follower asking for an answer, Stop telling the server): what the page is doing, not the
// server's or the gateway's "try again shortly", which asks the reader to do what the page does
// already (and offers no Retry to do it with).

/**
 * `message` without its advice to try again ("…; try again shortly", "…; try again in a few
 * seconds"): what went wrong, only.
 * @param {string} message
 */
export function withoutAdvice(message) {
  return message
    .replace(/[;,:]?\s*(?:please\s+)?(?:slow down and\s+)?try again\b[^;.]*/gi, '')
    .replace(/[\s;,:.]+$/, '')
    .trim();
}

/**
 * The note on an answer the page cannot ask the server about right now (it keeps trying).
 * @param {string} message  why it cannot
 * @param {{stopping?: boolean}} [options]  `stopping`: Stop was pressed already (not offered again)
 */
export function waitingNote(message, { stopping = false } = {}) {
  const why = withoutAdvice(message);
  return (
    `The server is not answering right now${why ? ` (${why})` : ''}; the page keeps trying, and nothing is lost.` +
    (stopping ? '' : ' You can Stop.')
  );
}

/**
 * What Stop says while the server cannot be told yet (it keeps telling it).
 * @param {string} message  why it could not
 */
export function stoppingNote(message) {
  const why = withoutAdvice(message);
  return `Stopping… the server has not heard yet${why ? ` (${why})` : ''}; the page keeps telling it`;
}

/**
 * What is news in the parts of a note now shown (`after`), against those said before: only the
 * parts that were not there. One part going (the server answering again) leaves the rest, which
 * was said already: said again, it sounded like new news (an outside-in probe).
 * @param {readonly string[]} before
 * @param {readonly string[]} after
 */
export const newParts = (before, after) => after.filter((part) => part && !before.includes(part)).join(' ');
