// @ts-check
// An answer's Markdown as a list of blocks (paragraphs, headings, lists, code blocks, tables...),
// so that a streaming answer re-renders only the blocks that changed: in practice the last one,
// which is still growing (and any whose reference link just got its definition). Blocks before
// it stay the same DOM nodes, so a reader can select text in them while the answer streams.
import { Marked } from 'marked';

/** @import { Token } from 'marked' */

const lexer = new Marked({ gfm: true, breaks: false });

/**
 * One top-level block of the answer. `key` is its Markdown source without trailing whitespace:
 * two blocks with the same key render the same.
 * @typedef {object} Block
 * @property {string} key
 * @property {Token} token
 */

/**
 * The blocks of `markdown`, in order; the blank lines between them are not blocks.
 * @param {string} markdown
 * @returns {Block[]}
 */
export function splitBlocks(markdown) {
  return lexer
    .lexer(markdown)
    .filter((token) => token.type !== 'space')
    .map((token) => ({ key: token.raw.trimEnd(), token }));
}

/**
 * How many of the blocks on screen (their keys, in order) are still right: the first `n` keys
 * equal the new blocks' keys, and only blocks from `n` on need rendering.
 * @param {readonly string[]} shown
 * @param {readonly Block[]} blocks
 */
export function unchangedCount(shown, blocks) {
  let n = 0;
  while (n < shown.length && n < blocks.length && shown[n] === blocks[n].key) n += 1;
  return n;
}

/**
 * How many blocks are finished: all of them once the answer ended, else all but the last, which
 * may still grow.
 * @param {readonly Block[]} blocks
 * @param {boolean} ended
 */
export const finishedCount = (blocks, ended) => (ended ? blocks.length : Math.max(0, blocks.length - 1));

/**
 * The blocks with keys that also say which reference definitions (`[1]: https://...`) were
 * known: a block such as `See [the docs][1].` renders as a link only once its definition has
 * arrived, often in a later block, so its Markdown alone cannot tell whether it must be drawn
 * again. Only finished definitions count (one still arriving would redraw the blocks that may
 * use it on every frame), and only blocks with a `[` can use one (the others keep their nodes,
 * and any selection in them).
 * @param {readonly Block[]} blocks
 * @param {number} finished  how many of them are finished (see finishedCount)
 * @returns {Block[]}
 */
export function withDefinitions(blocks, finished) {
  const definitions = blocks
    .slice(0, finished)
    .filter((block) => block.token.type === 'def')
    .map((block) => block.key);
  if (!definitions.length) return [...blocks];
  const known = `\n\u0000${definitions.join('\n')}`;
  return blocks.map((block) => (block.key.includes('[') ? { ...block, key: block.key + known } : block));
}
