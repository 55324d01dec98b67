// @ts-check
// Long unbroken runs in text (a base64 blob, a hash, a URL, minified code written as prose)
// given places where a line may break: a <wbr> every RUN_CHARS characters of such a run. Left to
// the browser (`overflow-wrap: anywhere`), Chromium took ~0.1 ms per character of the run to lay
// it out, the page frozen meanwhile (an outside-in probe: 4.6 s for 50,000 characters, 94 s for
// 900,000, Stop unusable and the WebSocket dropped for a missed ping); with a <wbr> every 64
// characters it takes 31 ms for 50,000. A <wbr> holds no text: what is selected and copied is
// the text as it came.

/** The longest run of characters without a place to break. */
export const RUN_CHARS = 64;

const LONG_RUN = new RegExp(`\\S{${RUN_CHARS + 1},}`, 'gu');
// Characters a break must not come before: the second half of a surrogate pair, a combining
// mark, a joiner or a variation selector (each belongs with what precedes it).
const CLINGS = /^[\uDC00-\uDFFF\p{M}\u200D\uFE00-\uFE0F]/u;

/**
 * `text` cut where a <wbr> goes between the pieces: within each run of more than RUN_CHARS
 * characters without white space, about every RUN_CHARS of them (a little later where the cut
 * would part a character from what clings to it). One piece when there is no such run.
 * @param {string} text
 * @returns {string[]}
 */
export function breakablePieces(text) {
  /** @type {string[]} */
  const pieces = [];
  let from = 0;
  for (const run of text.matchAll(LONG_RUN)) {
    const end = run.index + run[0].length;
    let cut = run.index + RUN_CHARS;
    while (cut < end) {
      while (cut < end && CLINGS.test(text.slice(cut, cut + 1))) cut += 1;
      if (cut >= end) break;
      pieces.push(text.slice(from, cut));
      from = cut;
      cut += RUN_CHARS;
    }
  }
  pieces.push(text.slice(from));
  return pieces;
}

/**
 * `text` as nodes: its pieces (see breakablePieces), a <wbr> between each two.
 * @param {string} text
 * @returns {Node[]}
 */
export function breakableNodes(text) {
  /** @type {Node[]} */
  const nodes = [];
  breakablePieces(text).forEach((piece, index) => {
    if (index) nodes.push(document.createElement('wbr'));
    nodes.push(document.createTextNode(piece));
  });
  return nodes;
}

/**
 * Sets `node`'s text to `text`, breakable (see breakablePieces).
 * @param {Element} node
 * @param {string} text
 */
export function setBreakableText(node, text) {
  node.textContent = '';
  node.append(...breakableNodes(text));
}

/**
 * Gives the long runs of the text under `root` their places to break, but not in code blocks
 * (their lines do not wrap: they scroll sideways).
 * @param {Element} root
 */
export function makeBreakable(root) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  /** @type {Text[]} */
  const long = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = /** @type {Text} */ (node);
    if (text.data.length > RUN_CHARS && !text.parentElement?.closest('pre')) long.push(text);
  }
  for (const text of long) {
    const nodes = breakableNodes(text.data);
    if (nodes.length > 1) text.replaceWith(...nodes);
  }
}
