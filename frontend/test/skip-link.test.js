// @ts-check
// The page's first stop for the keyboard is "Skip to message box" (index.html), out of sight
// until it is focused (src/style.css): a keyboard user otherwise tabbed through the whole list
// of conversations before reaching the message box.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const HTML = readFileSync(new URL('../index.html', import.meta.url), 'utf8').replace(/<!--[\s\S]*?-->/g, '');
const CSS = readFileSync(new URL('../src/style.css', import.meta.url), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '');

/** The declarations of the rule whose selector list is exactly `selector`. */
function rule(/** @type {string} */ selector) {
  const escaped = selector.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return CSS.match(new RegExp(`(?:^|[};])\\s*${escaped}\\s*\\{([^}]*)\\}`))?.[1] ?? '';
}

test('the first thing the keyboard reaches is a link to the message box', () => {
  const body = HTML.slice(HTML.indexOf('<body'));
  const first = body.match(/<(a\s[^>]*href|button|input|textarea|select|[a-z]+\s[^>]*tabindex="0")[^>]*>/)?.[0] ?? '';
  assert.match(first, /^<a href="#prompt"[^>]*class="skip-link"/, first);
  assert.match(body, /class="skip-link">Skip to message box<\/a>/);
  assert.match(HTML, /<textarea id="prompt"/);
});

test('it is out of sight until it is focused, then shown', () => {
  assert.match(rule('.skip-link'), /position:\s*fixed/);
  assert.match(rule('.skip-link'), /transform:\s*translateY\(calc\(-100% - \d+px\)\)/);
  assert.match(rule('.skip-link:focus'), /transform:\s*none/);
});
