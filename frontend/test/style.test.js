// @ts-check
// What the stylesheet (src/style.css) promises, read from its text: `hidden` hides whatever
// display a class gives; the marks in the list differ by shape, not by colour alone (WCAG 1.4.1),
// and each stands out at least 3:1 against the list and a hovered item, the pulsing ring at its
// faintest too (WCAG 1.4.11), in light and dark; so does the drawer toggle's dot for them.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const CSS = readFileSync(new URL('../src/style.css', import.meta.url), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');

/**
 * The innermost rules, in order: their selectors and declarations (`@media` dropped).
 * @returns {{selectors: string[], declarations: Map<string, string>}[]}
 */
function rules() {
  return [...CSS.matchAll(/([^{}]+)\{([^{}]*)\}/g)].map(([, selectors, body]) => ({
    selectors: selectors.split(',').map((s) => s.trim()),
    declarations: new Map(
      body
        .split(';')
        .map((d) => d.split(':').map((part) => part.trim()))
        .filter(([name, value]) => name && value)
        .map(([name, ...value]) => [name, value.join(':')]),
    ),
  }));
}

/**
 * The custom properties (`--side: #f4f4f6`) of `:root`, light or dark.
 * @param {'light' | 'dark'} scheme
 */
function colours(scheme) {
  const light = CSS.match(/:root\s*\{([^}]*)\}/)?.[1] ?? '';
  const dark = CSS.match(/prefers-color-scheme:\s*dark\)\s*\{\s*:root\s*\{([^}]*)\}/)?.[1] ?? '';
  const read = (/** @type {string} */ body) => Object.fromEntries([...body.matchAll(/(--[\w-]+):\s*(#[0-9a-f]{6})/gi)].map(([, n, v]) => [n, v]));
  return scheme === 'light' ? read(light) : { ...read(light), ...read(dark) };
}

/** @param {string} hex */
const rgb = (hex) => [1, 3, 5].map((at) => parseInt(hex.slice(at, at + 2), 16));

/** @param {number[]} colour */
function luminance(colour) {
  const [r, g, b] = colour.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/**
 * WCAG's contrast ratio of `front`, drawn at `opacity` over `back`, against `back`.
 * @param {string} front
 * @param {string} back
 * @param {number} [opacity]
 */
function contrast(front, back, opacity = 1) {
  const seen = rgb(front).map((c, i) => c * opacity + rgb(back)[i] * (1 - opacity));
  const [hi, lo] = [luminance(seen), luminance(rgb(back))].sort((a, b) => b - a);
  return (hi + 0.05) / (lo + 0.05);
}

const MARKS = ['arriving', 'answered', 'stopped', 'failed', 'refused'];

/**
 * What a mark is drawn with: `.mark`'s declarations, then its own class's.
 * @param {string} mark
 */
function markStyle(mark) {
  /** @type {Map<string, string>} */
  const style = new Map();
  for (const { selectors, declarations } of rules()) {
    if (selectors.includes('.mark') || selectors.includes(`.mark.${mark}`)) {
      for (const [name, value] of declarations) style.set(name, value);
    }
  }
  return style;
}

test('an element that is hidden is not shown, whatever display its class gives it', () => {
  const hiding = rules().filter(({ selectors }) => selectors.includes('[hidden]'));
  assert.ok(
    hiding.some(({ declarations }) => declarations.get('display') === 'none !important'),
    'a [hidden] { display: none !important } rule (the Copy and Edit row of a prompt being edited stayed)',
  );
});

test('the marks in the list differ by their shape, not only by colour', () => {
  const shapes = new Map(
    MARKS.map((mark) => {
      const style = markStyle(mark);
      const hollow = style.get('background') === 'transparent';
      return [mark, `${style.get('border-radius')} ${style.get('transform') ?? ''} ${hollow ? 'hollow' : 'filled'}`];
    }),
  );
  assert.notEqual(shapes.get('answered'), shapes.get('stopped'), 'a new answer and a stopped one');
  const distinct = new Set(['arriving', 'answered', 'stopped', 'failed'].map((mark) => shapes.get(mark)));
  assert.equal(distinct.size, 4, JSON.stringify(Object.fromEntries(shapes)));
  assert.equal(shapes.get('refused'), shapes.get('failed'), 'a prompt not accepted: something to see to, as a failure');
});

test('each mark stands out 3:1 against the list and a hovered item, the arriving ring at its faintest too', () => {
  const pulse = CSS.match(/@keyframes pulse\s*\{([\s\S]*?\})\s*\}/)?.[1] ?? '';
  const faintest = Math.min(1, ...[...pulse.matchAll(/opacity:\s*([\d.]+)/g)].map(([, o]) => Number(o)));
  /** @type {string[]} */
  const under = [];
  for (const scheme of /** @type {const} */ (['light', 'dark'])) {
    const colour = colours(scheme);
    for (const mark of MARKS) {
      const style = markStyle(mark);
      const drawn = mark === 'arriving' ? style.get('border')?.match(/var\((--[\w-]+)\)/)?.[1] : style.get('background')?.match(/var\((--[\w-]+)\)/)?.[1];
      assert.ok(drawn && colour[drawn], `${mark}: its colour`);
      const opacity = mark === 'arriving' ? faintest : 1;
      // The list, and an item under the pointer (in dark, the new answer's dot was 2.75:1 there).
      for (const back of ['--side', '--hover']) {
        const ratio = contrast(colour[drawn], colour[back], opacity);
        if (ratio < 3) under.push(`${scheme}, ${mark} (${drawn} at ${opacity}) on ${back}: ${ratio.toFixed(2)}:1`);
      }
    }
  }
  assert.deepEqual(under, [], 'every mark at least 3:1');
});

test("the drawer toggle's dot for news in the list stands out 3:1, on the page and under the pointer", () => {
  const dot = rules().find(({ selectors }) => selectors.includes('.toggle-sidebar.has-news::after'));
  const drawn = dot?.declarations.get('background')?.match(/var\((--[\w-]+)\)/)?.[1];
  /** @type {string[]} */
  const under = [];
  for (const scheme of /** @type {const} */ (['light', 'dark'])) {
    const colour = colours(scheme);
    assert.ok(drawn && colour[drawn], 'its colour');
    for (const back of ['--bg', '--hover']) {
      const ratio = contrast(colour[drawn], colour[back]);
      if (ratio < 3) under.push(`${scheme}, ${drawn} on ${back}: ${ratio.toFixed(2)}:1`);
    }
  }
  assert.deepEqual(under, []);
});

test("the message box's focus is a 2 px ring in the focus colour, like the other controls' outlines", () => {
  // Probe: its outline was off, and the only sign a 1 px border colour change of the form.
  const box = rules().find(({ selectors }) => selectors.includes('.composer textarea'));
  assert.equal(box?.declarations.get('outline'), 'none', 'the form draws it');
  const border = rules().find(({ selectors }) => selectors.includes('.composer'))?.declarations.get('border') ?? '';
  const ring = rules().find(({ selectors }) => selectors.some((s) => /^\.composer:has\(textarea:focus(-visible)?\)$/.test(s)));
  const shadow = ring?.declarations.get('box-shadow') ?? '';
  const [, spread] = shadow.match(/^0 0 0 (\d+)px var\(--focus\)$/) ?? [];
  const [, width] = border.match(/^(\d+)px solid/) ?? [];
  assert.ok(spread && width, `a ring (${shadow}) around the border (${border})`);
  assert.ok(Number(spread) + Number(width) >= 2, '2 px at least, with the border');
});
