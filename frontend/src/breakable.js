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
// its joined parts, a letter with its marks, a Hangul syllable) ends: a cut is moved there.
const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
// Far enough back that the segmenter sees where the grapheme at a cut starts (clusters this long
// are pathological: one then may be cut, which costs a glyph's looks, never the text).
const LOOK_BACK = 32;

/** @param {number} code  a UTF-16 code unit */
const cjk = (code) => code >= 0x3040 && code <= 0x9fff;

/**
 * The first grapheme boundary of `text` at `cut` or after it (at most `end`).
 * @param {string} text
 * @param {number} cut
 * @param {number} end
 */
function boundaryFrom(text, cut, end) {
  // Between two characters below U+0300 (Latin, digits, the signs of a blob or a URL; marks
  // start there) is always a boundary: asked of the segmenter, a million of them took 0.8 s.
  const before = text.charCodeAt(cut - 1);
  const after = text.charCodeAt(cut);
  if (before < 0x300 && after < 0x300) return cut;
  // So is one between two CJK characters or kana (Chinese and Japanese run without spaces),
  // but for kana's two combining sound marks.
  if (cjk(before) && cjk(after) && after !== 0x3099 && after !== 0x309a) return cut;
  const from = Math.max(0, cut - LOOK_BACK);
  for (const { index } of graphemes.segment(text.slice(from, Math.min(end, cut + LOOK_BACK)))) {
    if (from + index >= cut) return from + index;
  }
  return Math.min(end, cut + LOOK_BACK);
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
    let cut = run.index + RUN_CHARS;
    while (cut < end) {
      cut = boundaryFrom(text, cut, end);
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
  // The run it ends with: after its last white space (and, were it long, after its last <wbr>).
  const start = text.data.search(/\S*$/u);
  const run = text.data.slice(start);
  if (start > 0) text.data = text.data.slice(0, start);
  else text.remove();
  insertAll(node, breakableNodes(run + added), null);
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
    if (nodes.length === 1 || !text.parentNode) continue;
    insertAll(text.parentNode, nodes, text);
    text.remove();
  }
}
