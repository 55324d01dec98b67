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
const TEXT_NODE = 3;

const LONG_RUN = new RegExp(`\\S{${RUN_CHARS + 1},}`, 'gu');
// Where one character as the reader sees it (a grapheme: a flag, an emoji with its skin tone or
// its joined parts, a letter with its marks, a Hangul syllable) ends: a cut is moved there. Not
// in every browser (Firefox before 125): there the characters below decide alone.
const graphemes =
  typeof Intl.Segmenter === 'function' ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;
// A character that may bind to the one after it (a mark: a virama joins conjuncts; a joiner;
// a prepended sign; a Hangul jamo; half of a surrogate pair, as emoji, flags and modifiers are),
// and one that may bind to the one before it (a mark, a joiner, a variation selector, a jamo,
// Thai and Lao SARA AM, halfwidth kana sound marks, half of a pair). Between two others is
// always a boundary: the segmenter is asked only there (a million of them took it 0.8 s).
const JOINS_NEXT = /[\p{M}\u200D\u0600-\u0605\u06DD\u070F\u0890\u0891\u08E2\u0D4E\u1100-\u11FF\uA960-\uA97F\uD7B0-\uD7FF\uD800-\uDFFF]/u;
const JOINS_PREVIOUS = /[\p{M}\u200C\u200D\uFE00-\uFE0F\u0E33\u0EB3\u1100-\u11FF\uA960-\uA97F\uD7B0-\uD7FF\uFF9E\uFF9F\uD800-\uDFFF]/u;

/**
 * Whether nothing binds the characters either side of `at` together.
 * @param {string} text
 * @param {number} at
 */
const plainlyApart = (text, at) => !JOINS_NEXT.test(text[at - 1]) && !JOINS_PREVIOUS.test(text[at]);

/**
 * The first grapheme boundary of `text` at `cut` or after it (`end` at most).
 * @param {string} text
 * @param {number} start  a boundary before `cut`: where the piece ending at it starts
 * @param {number} cut
 * @param {number} end
 */
function boundaryFrom(text, start, cut, end) {
  if (plainlyApart(text, cut)) return cut;
  if (!graphemes) {
    let at = cut;
    while (at < end && !plainlyApart(text, at)) at += 1;
    return at;
  }
  // Segmented from a boundary, so that each grapheme is seen whole; a window as long again
  // while none ends after `cut` in it (a cluster of pathological length).
  for (let stop = Math.min(end, cut + RUN_CHARS); ; stop = Math.min(end, stop + RUN_CHARS)) {
    for (const { index } of graphemes.segment(text.slice(start, stop))) {
      if (start + index >= cut) return start + index;
    }
    if (stop === end) return end;
  }
}

/**
 * `text` cut where a <wbr> goes between the pieces: within each run of more than RUN_CHARS
 * characters without white space, about every RUN_CHARS of them (a little later where the cut
 * would fall inside a grapheme). One piece when there is no such run.
 * @param {string} text
 * @returns {string[]}
 */
export function breakablePieces(text) {
  /** @type {string[]} */
  const pieces = [];
  let from = 0;
  for (const run of text.matchAll(LONG_RUN)) {
    const end = run.index + run[0].length;
    let start = run.index; // after white space: a boundary
    let cut = start + RUN_CHARS;
    while (cut < end) {
      cut = boundaryFrom(text, start, cut, end);
      if (cut >= end) break;
      pieces.push(text.slice(from, cut));
      from = cut;
      start = cut;
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
  return nodesOf(breakablePieces(text));
}

/**
 * @param {string[]} pieces
 * @returns {Node[]}  a text node each, a <wbr> between each two
 */
function nodesOf(pieces) {
  /** @type {Node[]} */
  const nodes = [];
  pieces.forEach((piece, index) => {
    if (index) nodes.push(document.createElement('wbr'));
    nodes.push(document.createTextNode(piece));
  });
  return nodes;
}

/**
 * Inserts `nodes` into `parent` before `before` (at its end when null), one at a time: spread
 * into one call, a few hundred thousand of them (an answer of millions of characters) overflow
 * the stack (a review).
 * @param {Node} parent
 * @param {Node[]} nodes
 * @param {Node | null} before
 */
function insertAll(parent, nodes, before) {
  for (const node of nodes) parent.insertBefore(node, before);
}

/**
 * Sets `node`'s text to `text`, breakable (see breakablePieces).
 * @param {Element} node
 * @param {string} text
 */
export function setBreakableText(node, text) {
  node.textContent = '';
  insertAll(node, breakableNodes(text), null);
}

/**
 * Appends `added` to `node`'s text, breakable: a long run that the text shown ends with goes on
 * being broken where it continues. Costs what was added, not the whole text again (a thinking
 * phase grows a frame at a time: a review).
 * @param {Element} node  text and <wbr> only, as setBreakableText leaves it
 * @param {string} added
 */
export function appendBreakable(node, added) {
  const last = node.lastChild;
  if (last?.nodeType !== TEXT_NODE) {
    insertAll(node, breakableNodes(added), null);
    return;
  }
  const text = /** @type {Text} */ (last);
  // The run it ends with: after its last white space (and, were it long, after its last <wbr>),
  // broken again with what was added; the first piece goes on in the same text node (one new
  // node a frame added up to hundreds for a few thousand characters: a review).
  const start = text.data.search(/\S*$/u);
  const [first, ...rest] = breakableNodes(text.data.slice(start) + added);
  text.data = text.data.slice(0, start) + (first.textContent ?? '');
  insertAll(node, rest, null);
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
    const pieces = breakablePieces(text.data);
    if (pieces.length === 1 || !text.parentNode) continue; // prose: nothing to build
    insertAll(text.parentNode, nodesOf(pieces), text);
    text.remove();
  }
}
