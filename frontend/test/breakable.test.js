// @ts-check
// Long unbroken runs of text get places to break (src/breakable.js): every RUN_CHARS characters
// of a run longer than that, never inside a character, and the text itself unchanged.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RUN_CHARS, breakablePieces } from '../src/breakable.js';

test('text without a long run is one piece', () => {
  assert.deepEqual(breakablePieces(''), ['']);
  assert.deepEqual(breakablePieces('a few words'), ['a few words']);
  const words = `${'x'.repeat(RUN_CHARS)} ${'y'.repeat(RUN_CHARS)}`;
  assert.deepEqual(breakablePieces(words), [words]);
});

test('a long run is cut every RUN_CHARS characters, the text around it whole', () => {
  const blob = 'A'.repeat(RUN_CHARS * 3 + 5);
  const text = `see ${blob} there`;
  const pieces = breakablePieces(text);
  assert.equal(pieces.join(''), text);
  assert.deepEqual(
    pieces.map((piece) => piece.length),
    [4 + RUN_CHARS, RUN_CHARS, RUN_CHARS, 5 + ' there'.length],
  );
});

test('a run of exactly RUN_CHARS characters is not cut', () => {
  assert.equal(breakablePieces('b'.repeat(RUN_CHARS)).length, 1);
  assert.equal(breakablePieces('b'.repeat(RUN_CHARS + 1)).length, 2);
});

test('a cut never parts a surrogate pair, a combining mark or a joiner from what it follows', () => {
  for (const clinging of ['😀', 'e\u0301', 'a\u200Db', 'x\uFE0F']) {
    const text = 'z'.repeat(RUN_CHARS - 1) + clinging.repeat(40);
    const pieces = breakablePieces(text);
    assert.equal(pieces.join(''), text);
    assert.ok(pieces.length > 1, clinging);
    for (const piece of pieces.slice(1)) {
      assert.doesNotMatch(piece, /^[\uDC00-\uDFFF\p{M}\u200D\uFE00-\uFE0F]/u, JSON.stringify(clinging));
    }
  }
});

test('a million characters are cut in one pass', () => {
  const pieces = breakablePieces('q'.repeat(1_000_000));
  assert.equal(pieces.length, Math.ceil(1_000_000 / RUN_CHARS));
});
