// @ts-check
// Markdown to DOM for model answers. Raw HTML in the text is shown as text, never parsed, and the
// result goes through DOMPurify as well, so no model output can create a script or a handler.
// Code blocks get a language label, a Copy code button and (once highlight.js has loaded)
// highlighting; tables a scrolling frame.
import DOMPurify from 'dompurify';
import { Marked } from 'marked';

import { makeBreakable } from './breakable.js';
import { setIconLabel } from './icons.js';

/** @import { Token } from 'marked' */

/** @type {Record<string, string>} */
const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** @param {string} text */
const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => ENTITIES[c]);

const marked = new Marked({
  gfm: true,
  breaks: false,
  renderer: {
    // Block and inline HTML in the Markdown source: shown literally.
    html(token) {
      return escapeHtml(token.text);
    },
    // An image: a link to it, named by its alt text (see `linkImages`). Loaded, it would tell
    // whoever serves it that the answer was read, and by whom (a tracking pixel a model can be
    // tricked into writing: only the page's Content-Security-Policy stopped it, a probe).
    image(token) {
      const name = token.text || token.href;
      return `<span data-image-href="${escapeHtml(token.href)}">${escapeHtml(name)}</span>`;
    },
  },
});

/**
 * Links open in a new tab, without giving that tab a handle on this one.
 * @param {Element} link
 */
function opensApart(link) {
  link.setAttribute('target', '_blank');
  link.setAttribute('rel', 'noopener noreferrer');
}

// (Where there is no DOM to sanitise with, as in node's tests of the view, DOMPurify has no
// hooks, nor `sanitize`: nothing can be rendered there.)
if (DOMPurify.isSupported) {
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A') opensApart(node);
  });
}

const PURIFY = {
  FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'img'],
  FORBID_ATTR: ['style'],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#|\/)/i,
};

/**
 * Makes each image of a rendered block (a span that names it, from the renderer above) a link
 * to it, or, inside a link already (a badge: `[![build](badge.svg)](ci-page)`), that link's
 * text: a link in a link is no HTML, and the browser left the outer one empty (a review).
 * @param {ParentNode} root  sanitised
 */
function linkImages(root) {
  for (const span of root.querySelectorAll('span[data-image-href]')) {
    const href = span.getAttribute('data-image-href') ?? '';
    if (!span.closest('a') && PURIFY.ALLOWED_URI_REGEXP.test(href)) {
      const link = document.createElement('a');
      link.setAttribute('href', href);
      opensApart(link);
      link.append(...span.childNodes);
      span.replaceWith(link);
    } else {
      span.replaceWith(...span.childNodes);
    }
  }
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export const element = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

/** @type {typeof import('./syntax.js') | null} */
let syntax = null;
/** @type {Promise<void> | null} */
let loading = null;

/**
 * Fetches highlight.js (its own chunk) and highlights the code blocks already on the page.
 * Called once the page has shown; until it is there, code blocks are shown plain.
 */
export function loadHighlighting() {
  loading ??= import('./syntax.js').then(
    (module) => {
      syntax = module;
      for (const code of document.querySelectorAll('code[data-language]:not(.hljs)')) {
        highlightCode(/** @type {HTMLElement} */ (code));
      }
    },
    () => {
      loading = null; // a failed fetch (a new build replaced the chunk): plain code, try later
    },
  );
  return loading;
}

/**
 * Highlights one code element, if highlight.js is loaded and knows its language. Its output is
 * sanitised too: only spans with classes get through.
 * @param {HTMLElement} code
 */
function highlightCode(code) {
  const language = code.dataset.language ?? '';
  const html = syntax?.highlight(code.textContent ?? '', language);
  if (html == null) return;
  code.replaceChildren(
    DOMPurify.sanitize(html, { ALLOWED_TAGS: ['span'], ALLOWED_ATTR: ['class'], RETURN_DOM_FRAGMENT: true }),
  );
  code.classList.add('hljs');
}

/**
 * The language a fenced code block names (`language-xxx`, from its info string), or ''.
 * @param {Element} code
 */
const languageOf = (code) =>
  [...code.classList].find((name) => name.startsWith('language-'))?.slice('language-'.length) ?? '';

/**
 * @typedef {object} BlockActions
 * @property {(code: string, button: HTMLButtonElement) => void} copyCode
 */

/**
 * Dresses the code blocks and tables of a rendered block: a header with the language and a Copy
 * code button, code and tables that scroll sideways inside a frame the keyboard can reach.
 * @param {ParentNode} root
 * @param {BlockActions} actions
 * @param {boolean} [highlight]  false: left plain (code still arriving)
 */
function decorate(root, { copyCode }, highlight = true) {
  for (const pre of root.querySelectorAll('pre')) {
    const code = pre.querySelector('code');
    if (!code) continue;
    const language = languageOf(code);
    code.dataset.language = language;
    const frame = element('div', 'code-block');
    frame.dir = 'ltr'; // code reads left to right, in a block of right-to-left text too
    const head = element('div', 'code-head');
    const label = element('span', 'code-language', language || 'text');
    const copy = element('button', 'copy-code');
    setIconLabel(copy, 'copy', 'Copy code');
    copy.type = 'button';
    copy.addEventListener('click', () => copyCode(code.textContent ?? '', copy));
    head.append(label, copy);
    pre.replaceWith(frame);
    frame.append(head, pre);
    pre.tabIndex = 0; // it scrolls sideways: the keyboard must reach it
    if (highlight) highlightCode(code);
  }
  for (const table of root.querySelectorAll('table')) {
    const frame = element('div', 'table-frame');
    frame.tabIndex = 0;
    table.replaceWith(frame);
    frame.append(table);
  }
}

/**
 * A block of an answer, its direction (left to right, right to left) taken from its own text.
 */
function blockElement() {
  const block = element('div', 'block');
  block.dir = 'auto';
  return block;
}

/**
 * One block of an answer, rendered, sanitised and dressed.
 * @param {Token} token  a top-level token from blocks.js
 * @param {BlockActions} actions
 * @returns {HTMLDivElement}
 */
export function renderBlock(token, actions) {
  const html = marked.parser([token]);
  const block = blockElement();
  block.append(DOMPurify.sanitize(html, { ...PURIFY, RETURN_DOM_FRAGMENT: true }));
  linkImages(block);
  makeBreakable(block);
  decorate(block, actions);
  return block;
}

/**
 * The code of each code block still arriving, as shown, so that what arrives next is appended.
 * @type {WeakMap<HTMLElement, {language: string, text: string, code: HTMLElement}>}
 */
const growingCode = new WeakMap();

/**
 * A code block still arriving, drawn plain: its text set as text (nothing to parse or
 * sanitise) and not highlighted. Rendering, sanitising and highlighting it whole on every frame
 * took longer the longer it grew (an 800-line block blocked the page for 4 s); this costs what
 * arrived since. Once finished, it is rendered with renderBlock like any other block.
 * @param {import('marked').Tokens.Code} token
 * @param {BlockActions} actions
 * @returns {HTMLDivElement}
 */
export function renderGrowingCode(token, actions) {
  const block = blockElement();
  const pre = element('pre');
  const code = element('code');
  const language = token.lang?.match(/^\S*/)?.[0] ?? '';
  if (language) code.className = `language-${language}`;
  code.textContent = token.text;
  pre.append(code);
  block.append(pre);
  decorate(block, actions, false);
  growingCode.set(block, { language: token.lang ?? '', text: token.text, code });
  return block;
}

/**
 * Shows what arrived of a code block drawn by renderGrowingCode, appending to its text (a
 * selection in it, or the focus on its Copy code button, stays); false if `block` is not that
 * code block (another language, text that changed rather than grew): draw it again.
 * @param {HTMLElement} block
 * @param {import('marked').Tokens.Code} token
 */
export function growCode(block, token) {
  const shown = growingCode.get(block);
  if (!shown || shown.language !== (token.lang ?? '') || !token.text.startsWith(shown.text)) return false;
  const added = token.text.slice(shown.text.length);
  const last = shown.code.lastChild;
  if (last instanceof Text) last.appendData(added);
  else shown.code.append(added);
  shown.text = token.text;
  return true;
}
