// @ts-check
// The conversation on screen: user turns, answers that grow as they stream, and scrolling that
// keeps the newest text in view unless the reader scrolled up. User text is only ever set
// through textContent; answers go through the sanitising Markdown renderer.
import { renderMarkdown } from './markdown.js';

const NEAR_BOTTOM_PX = 80;

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
const element = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

export class ConversationView {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
  }

  nearBottom() {
    const c = this.container;
    return c.scrollHeight - c.scrollTop - c.clientHeight < NEAR_BOTTOM_PX;
  }

  /**
   * Runs `change`, then keeps the newest text in view if the reader was already there.
   * @param {() => void} change
   */
  keepInView(change) {
    const stick = this.nearBottom();
    change();
    if (stick) this.container.scrollTop = this.container.scrollHeight;
  }

  /** @param {string} text */
  addUser(text) {
    const turn = element('article', 'turn user');
    turn.setAttribute('aria-label', 'You');
    turn.append(element('p', 'text', text));
    this.keepInView(() => this.container.append(turn));
  }

  addAssistant() {
    const answer = new AnswerView();
    this.keepInView(() => this.container.append(answer.root));
    answer.onChange = (change) => this.keepInView(change);
    this.container.scrollTop = this.container.scrollHeight;
    return answer;
  }
}

/** @type {Record<string, string>} */
const ENDINGS = {
  cancelled: 'The answer was stopped',
  error: 'The answer failed',
  timeout: 'The answer took too long and was cut off',
  lost: 'This answer could not be recovered',
  abandoned: 'Nobody is answering this any more',
  refused: 'The prompt was not accepted',
};

/** One assistant turn on screen: its thinking, its answer, and how it ended. */
export class AnswerView {
  constructor() {
    this.root = element('article', 'turn assistant');
    this.root.setAttribute('aria-label', 'relaychat');
    this.root.setAttribute('aria-busy', 'true');
    /** @type {HTMLDetailsElement | null} */
    this.thinkingBlock = null;
    /** @type {HTMLParagraphElement | null} */
    this.thinkingText = null;
    this.answer = element('div', 'answer markdown');
    this.cursor = element('span', 'cursor');
    this.cursor.setAttribute('aria-hidden', 'true');
    this.root.append(this.answer, this.cursor);
    this.answerText = '';
    this.thinking = '';
    this.frame = 0;
    /** @type {(change: () => void) => void} */
    this.onChange = (change) => change();
    /** @type {HTMLParagraphElement | null} how it ended, unless it completed */
    this.notice = null;
    /** @type {HTMLButtonElement | null} */
    this.retryButton = null;
  }

  /**
   * Shows the answer and its thinking as they are now (they grow as chunks arrive, and may be
   * replaced whole by a snapshot from the server).
   * @param {string} answerText
   * @param {string} thinking
   */
  show(answerText, thinking) {
    if (thinking && !this.thinkingBlock) {
      this.thinkingBlock = element('details', 'thinking');
      this.thinkingBlock.open = true;
      this.thinkingBlock.append(element('summary', '', 'Thinking'));
      this.thinkingText = element('p', 'thinking-text');
      this.thinkingBlock.append(this.thinkingText);
      this.root.insertBefore(this.thinkingBlock, this.answer);
    }
    this.answerText = answerText;
    this.thinking = thinking;
    this.schedule();
  }

  // Re-rendering Markdown once per animation frame, not once per publication, keeps long
  // answers cheap however fast the tokens come.
  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => this.render());
  }

  render() {
    this.frame = 0;
    this.onChange(() => {
      if (this.thinkingText) this.thinkingText.textContent = this.thinking;
      renderMarkdown(this.answer, this.answerText);
    });
  }

  /**
   * Shows the answer as ended: the cursor goes, and any ending but `complete` is explained.
   * @param {string} reason
   * @param {string} [message]
   */
  finish(reason, message) {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.render();
    if (this.thinkingBlock) this.thinkingBlock.open = false;
    this.cursor.remove();
    this.root.setAttribute('aria-busy', 'false');
    if (reason !== 'complete') {
      const ending = ENDINGS[reason] || 'The answer ended unexpectedly';
      const note = element('p', 'notice', message ? `${ending}: ${message}.` : `${ending}.`);
      note.setAttribute('role', 'alert');
      this.notice = note;
      this.onChange(() => this.root.append(note));
    }
  }

  /**
   * Offers to send the prompt again, on an answer that did not complete.
   * @param {() => void} retry
   */
  offerRetry(retry) {
    if (!this.notice || this.retryButton) return;
    const button = element('button', 'retry', 'Retry');
    button.type = 'button';
    button.addEventListener('click', retry);
    this.retryButton = button;
    this.notice.append(' ', button);
  }

  /** Takes the Retry offer back (a newer prompt was sent). */
  withdrawRetry() {
    this.retryButton?.remove();
    this.retryButton = null;
  }

  /** Takes this answer off the page (it is being asked again). */
  remove() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.root.remove();
  }
}
