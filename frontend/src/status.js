// @ts-check
// The status line above the conversation: the connection's news, the server's limits and the
// browser's storage, each part replaced only by news about itself; the connection's part may
// carry a Retry. It is no live region: it sits in the page, which is inert while the
// conversations drawer is open, and it was shown (unhidden) together with its text, which some
// screen readers miss. Each part's news is said through the page's announcer instead, once.
import { setIconLabel } from './icons.js';

/** @typedef {'connection' | 'limits' | 'storage'} StatusPart */

export class StatusLine {
  /**
   * @param {HTMLElement} line  the status line (shown while it has something to say)
   * @param {{say: (text: string) => void}} announcer
   */
  constructor(line, announcer) {
    this.line = line;
    this.announcer = announcer;
    /** @type {Record<StatusPart, {text: string, retry?: () => void}>} */
    this.parts = { connection: { text: '' }, limits: { text: '' }, storage: { text: '' } };
    this.text = document.createElement('span');
    /** The one Retry button, kept while a part offers it: replaced, it took the keyboard with it. */
    this.retryButton = document.createElement('button');
    this.retryButton.type = 'button';
    this.retryButton.className = 'retry';
    setIconLabel(this.retryButton, 'regenerate', 'Retry');
    this.retryButton.addEventListener('click', () => this.action?.());
    /** @type {(() => void) | undefined} what Retry does now */
    this.action = undefined;
  }

  /** What the line shows now. */
  get message() {
    return this.text.textContent ?? '';
  }

  /**
   * @param {StatusPart} part
   * @param {string} text  empty once there is nothing to say
   * @param {() => void} [retry]  offers a Retry button that does this
   * @param {{quiet?: boolean}} [options]  `quiet`: shown, not said (said otherwise already)
   */
  show(part, text, retry, { quiet = false } = {}) {
    const before = this.parts[part].text;
    this.parts[part] = { text, retry };
    // Only this part's news is said: the parts it is shown with are not news.
    if (text && text !== before && !quiet) this.announcer.say(text);
    const parts = Object.values(this.parts).filter((p) => p.text);
    const message = parts.map((p) => p.text).join(' ');
    this.action = parts.find((p) => p.retry)?.retry;
    if (this.text.textContent !== message) this.text.textContent = message;
    // The same nodes stay (a Retry replaced under the pointer swallowed the click, and one
    // replaced under the keyboard dropped it to the page's start); the button goes only when no
    // part offers it.
    if (this.action && !this.retryButton.isConnected) this.line.replaceChildren(this.text, ' ', this.retryButton);
    else if (!this.action && (this.retryButton.isConnected || !this.text.isConnected)) this.line.replaceChildren(this.text);
    this.line.hidden = parts.length === 0;
  }
}
