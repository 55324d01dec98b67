// @ts-check
// A streaming answer re-renders only the blocks that changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { finishedCount, splitBlocks, unchangedCount, withDefinitions } from '../src/blocks.js';

/** @param {string} markdown */
const keys = (markdown) => splitBlocks(markdown).map((block) => block.key);

test('an answer splits into its top-level blocks, blank lines left out', () => {
  const markdown = '# Title\n\nA paragraph\nover two lines.\n\n- one\n- two\n\n```js\nx = 1\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n';
  assert.deepEqual(keys(markdown), [
    '# Title',
    'A paragraph\nover two lines.',
    '- one\n- two',
    '```js\nx = 1\n```',
    '| a | b |\n|---|---|\n| 1 | 2 |',
  ]);
  assert.deepEqual(splitBlocks(markdown).map((b) => b.token.type), ['heading', 'paragraph', 'list', 'code', 'table']);
});

test('as an answer grows, only its last block changes', () => {
  const before = 'First paragraph.\n\nSecond, still gro';
  const after = 'First paragraph.\n\nSecond, still growing.\n\nThird';
  assert.equal(unchangedCount(keys(before), splitBlocks(after)), 1);
  // Blank lines arriving after a block do not change it.
  assert.equal(unchangedCount(keys('Done.'), splitBlocks('Done.\n\n')), 1);
});

test('an unclosed code fence is one growing block until it closes', () => {
  const open = splitBlocks('Intro.\n\n```py\nprint(1)\n');
  assert.equal(open.length, 2);
  assert.equal(open[1].token.type, 'code');
  const closed = splitBlocks('Intro.\n\n```py\nprint(1)\n```\n\nAfter.');
  assert.equal(unchangedCount(open.map((b) => b.key), closed), 1);
  assert.equal(closed.length, 3);
});

test('a block that a later line turns into something else is rendered again', () => {
  // A paragraph followed by a delimiter row becomes a table header.
  const shown = keys('a | b');
  const blocks = splitBlocks('a | b\n--|--\n1 | 2');
  assert.equal(blocks[0].token.type, 'table');
  assert.equal(unchangedCount(shown, blocks), 0);
});

test('a snapshot that replaces the text re-renders from the first difference', () => {
  assert.equal(unchangedCount(keys('one\n\ntwo\n\nthree'), splitBlocks('one\n\nTWO\n\nthree')), 1);
  assert.equal(unchangedCount(keys('one\n\ntwo'), splitBlocks('')), 0);
});

test('all blocks but the growing last one are finished until the answer ends', () => {
  const blocks = splitBlocks('one\n\ntwo\n\nthr');
  assert.equal(finishedCount(blocks, false), 2);
  assert.equal(finishedCount(blocks, true), 3);
  assert.equal(finishedCount([], false), 0);
});

/**
 * The keys a streaming answer's blocks are kept under while it is `markdown`.
 * @param {string} markdown
 * @param {boolean} [ended]
 */
const drawn = (markdown, ended = false) => {
  const blocks = splitBlocks(markdown);
  return withDefinitions(blocks, finishedCount(blocks, ended));
};

test('a block whose reference link is defined in a later block is drawn again once it is', () => {
  // Regression (browser probe): "[the docs][1]" stayed literal after streaming, as its block's
  // Markdown had not changed when "[1]: https://..." arrived; a reload rendered the link.
  const before = 'See [the docs][1].\n\nNo links here.\n\n';
  const shown = drawn(before).map((block) => block.key);
  const defined = drawn(`${before}[1]: https://example.com/docs\n\nThe end.`);
  assert.equal(unchangedCount(shown, defined), 0);
  assert.equal(defined[1].key, 'No links here.'); // it cannot use one: kept as it is
  // A definition still arriving is not one yet (it would redraw on every frame).
  assert.equal(unchangedCount(shown, drawn(`${before}[1]: https://exa`)), 2);
  // The answer's end finishes its last definition.
  const ended = drawn(`${before}[1]: https://example.com/docs`, true);
  assert.equal(unchangedCount(shown, ended), 0);
  assert.equal(ended[0].token.type, 'paragraph');
});

test('without definitions the keys are the blocks\' Markdown', () => {
  assert.deepEqual(
    drawn('A [bracket] here.\n\n# Title\n\nlast').map((block) => block.key),
    ['A [bracket] here.', '# Title', 'last'],
  );
});
