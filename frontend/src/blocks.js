// @ts-check
// An answer's Markdown as a list of blocks (paragraphs, headings, lists, code blocks, tables...),
// so that a streaming answer re-renders only the blocks that changed: in practice the last one,
// which is still growing. Blocks before it stay the same DOM nodes, so a reader can select text
// in them while the answer streams.
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
