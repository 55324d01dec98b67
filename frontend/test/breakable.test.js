// @ts-check
// Long unbroken runs of text get places to break (src/breakable.js): every RUN_CHARS characters
// of a run longer than that, never inside a character, and the text itself unchanged.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RUN_CHARS, appendBreakable, breakablePieces, setBreakableText } from '../src/breakable.js';
import { installDom, make } from './fake-dom.js';

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

test('a cut never falls inside a grapheme: a pair, a mark, a flag, a joined emoji, a syllable', () => {
  const segmenter = new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  const clusters = [
    ...['😀', 'e\u0301', 'x\uFE0F', '🇫🇷', '👍🏽', '👩\u200D💻', '\u1100\u1161\u11A8', 'क्षि', 'か\u3099', '日'],
    ...['\u0E01\u0E33', 'ｶﾞ', '\u0600\u0661', 'я', 'ש\u05B8'],
    // A joined chain longer than a piece: cut after it, never inside a pair (a review).
    `${'👩\u200D'.repeat(40)}💻`,
  ];
  for (const cluster of clusters) {
    for (const lead of ['z'.repeat(RUN_CHARS), 'z'.repeat(RUN_CHARS - 1), 'zzz', 'ab', '']) {
      const text = lead + cluster.repeat(60);
      const pieces = breakablePieces(text);
      assert.equal(pieces.join(''), text);
      assert.ok(pieces.length > 1 || [...text].length <= RUN_CHARS, cluster);
      const boundaries = new Set([...segmenter.segment(text)].map((each) => each.index));
      let at = 0;
      for (const piece of pieces.slice(0, -1)) {
        at += piece.length;
        assert.ok(boundaries.has(at), `${JSON.stringify(cluster)} cut at ${at}`);
      }
    }
  }
});

test('a million characters are cut in one pass', () => {
  const pieces = breakablePieces('q'.repeat(1_000_000));
  assert.equal(pieces.length, Math.ceil(1_000_000 / RUN_CHARS));
});

test('text appended a little at a time is broken as the whole would be, and reads the same', () => {
  installDom();
  const shown = make('p');
  const whole = `thinking ${'x'.repeat(300)} about ${'y'.repeat(70)} it${'z'.repeat(40)}`;
  setBreakableText(shown, whole.slice(0, 5));
  for (let at = 5; at < whole.length; at += 7) appendBreakable(shown, whole.slice(at, at + 7));
  assert.equal(shown.textContent, whole);
  // Between two places to break (white space, a <wbr>), never more than RUN_CHARS characters.
  const runs = [...shown.childNodes]
    .map((node) => (node.nodeType === 3 ? node.textContent : '\n'))
    .join('')
    .split(/\s/u);
  assert.ok(Math.max(...runs.map((run) => run.length)) <= RUN_CHARS);
  assert.ok([...shown.childNodes].filter((node) => node.nodeType === 1).length >= 5);
});
