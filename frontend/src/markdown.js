// @ts-check
// Markdown to DOM for model answers. Raw HTML in the text is shown as text, never parsed, and the
// result goes through DOMPurify as well, so no model output can create a script or a handler.
import DOMPurify from 'dompurify';
import { Marked } from 'marked';

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
  },
});

// Links open in a new tab, without giving that tab a handle on this one.
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

/**
 * Replaces the children of `target` with `text` rendered as Markdown. An unclosed code fence
 * (common while an answer is still streaming) renders as a code block up to the end.
 * @param {Element} target
 * @param {string} text
 */
export function renderMarkdown(target, text) {
  const html = marked.parse(text, { async: false });
  const fragment = DOMPurify.sanitize(html, {
    RETURN_DOM_FRAGMENT: true,
    FORBID_TAGS: ['style', 'form', 'input', 'button', 'textarea', 'select', 'iframe'],
    ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#|\/)/i,
  });
  target.replaceChildren(fragment);
}
