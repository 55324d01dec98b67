// @ts-check
// The conversation on screen: prompts and answers under their role labels, each with its actions;
// answers that grow as they stream (only the growing last block is rendered again, so the rest
// can be selected meanwhile), and scrolling that keeps the newest text in view unless the reader
// scrolled up (then a Jump to latest button appears). User text is only ever set through
// textContent (its direction, left to right or right to left, taken from the text itself);
// answers go through the sanitising Markdown renderer.
import { finishedCount, splitBlocks, unchangedCount, withDefinitions } from './blocks.js';
import { appendBreakable, setBreakableText } from './breakable.js';
import { setIconLabel } from './icons.js';
import { element, growCode, renderBlock, renderGrowingCode } from './markdown.js';

/** @import { BlockActions } from './markdown.js' */
/** @import { IconName } from './icons.js' */

/**
 * How close behind another a press is taken as that one's second (a double click, a repeated
 * Enter), not as a press of what has taken its place under the keyboard.
 */
export const SECOND_PRESS_MS = 800;

const NEAR_BOTTOM_PX = 80;
/** How many announcements the live region keeps (older ones are removed, silently). */
const ANNOUNCEMENTS_KEPT = 4;
/** The most of a block that is announced, in characters (the answer can be read whole). */
const ANNOUNCEMENT_MAX = 400;
/** The most of one announcement of several blocks, in characters. */
const ANNOUNCEMENTS_MAX = 1_000;
/**
 * Renders of a growing answer are spaced by this many times what the last one took: when a
 * render costs more (a long table still arriving, a slow device) the page gets rarer updates
 * rather than a busy main thread (rendering takes at most about a quarter of it).
 */
const RENDER_SPACING = 3;
/** How often a growing block held for a selection or the focus in it is looked at again, in ms. */
const HELD_RECHECK_MS = 300;

let ids = 0;
/** @param {string} prefix */
const uniqueId = (prefix) => `${prefix}-${(ids += 1)}`;

/**
 * @param {string} label
 * @param {string} className
 * @param {() => void} action
 * @param {IconName} [iconName]
 */
function button(label, className, action, iconName) {
  const node = element('button', className);
  if (iconName) setIconLabel(node, iconName, label);
  else node.textContent = label;
  node.type = 'button';
  node.addEventListener('click', action);
  return node;
}

/**
 * Shows for a moment, in a button's own label, that its action was done ("Copied"); the
 * announcer says it too.
 * @param {HTMLButtonElement} control
 * @param {string} done
 */
export function acknowledge(control, done) {
  const label = control.querySelector('.label') ?? control;
  const before = control.dataset.label ?? label.textContent ?? '';
  control.dataset.label = before;
  label.textContent = done;
  clearTimeout(Number(control.dataset.timer));
  control.dataset.timer = String(
    setTimeout(() => {
      label.textContent = before;
      delete control.dataset.label;
    }, 1500),
  );
}

/**
 * A message: its role label (a heading, so a screen reader can move from message to message),
 * its body and a row of actions.
 * @param {'user' | 'assistant'} role
 */
function message(role) {
  const root = element('article', `message from-${role}`);
  const label = element('h2', 'role', role === 'user' ? 'You' : 'relaychat');
  label.id = uniqueId('role');
  root.setAttribute('aria-labelledby', label.id);
  const actions = element('div', 'actions');
  root.append(label);
  return { root, actions };
}

/**
 * `text` cut at a word to about `most` characters, saying so: a screen reader would otherwise
 * read a long paragraph out in one go, with nothing but silencing speech to stop it.
 * @param {string} text
 * @param {number} [most]
 */
function shortened(text, most = ANNOUNCEMENT_MAX) {
  if (text.length <= most) return text;
  const cut = text.slice(0, most);
  const word = cut.lastIndexOf(' ');
  return `${word > most / 2 ? cut.slice(0, word) : cut}… (cut short; the answer has the rest)`;
}

/** Says things to screen readers through a polite live region, each once. */
export class Announcer {
  /** @param {HTMLElement} region */
  constructor(region) {
    this.region = region;
  }

  /** @param {string} text */
  say(text) {
    const said = text.replace(/\s+/g, ' ').trim();
    if (!said) return;
    this.region.append(element('p', '', said));
    while (this.region.childElementCount > ANNOUNCEMENTS_KEPT) this.region.firstElementChild?.remove();
  }
}

/**
 * @typedef {object} UserActions
 * @property {(button: HTMLButtonElement) => void} copy
 * @property {(message: UserMessage) => void} edit
 * @property {() => void} [editClosed]  its edit was closed unsent (Cancel, Esc, another prompt's Edit)
 */

/**
 * @typedef {object} AnswerActions
 * @property {(text: string, button: HTMLButtonElement) => void} copy  the answer's Markdown
 * @property {BlockActions['copyCode']} copyCode
 * @property {() => void} regenerate
 */

export class ConversationView {
  /**
   * @param {{scroller: HTMLElement, column: HTMLElement, jump: HTMLButtonElement, announcer: Announcer}} parts
   *   `scroller` scrolls, `column` holds the messages, `jump` is the Jump to latest button
   */
  constructor({ scroller, column, jump, announcer }) {
    this.scroller = scroller;
    this.column = column;
    this.jump = jump;
    this.announcer = announcer;
    /**
     * Whether the newest text is kept in view. Only the reader's own scrolling changes it: up
     * and away from the end stops it, back down to the end starts it again. (Worked out anew
     * at each change from how far the pane was from its end, a message box that grew, and so
     * shrank the pane, passed for the reader scrolling up: the rest of an answer, or a refused
     * prompt's notice, arrived out of sight.)
     */
    this.following = true;
    /** Where the pane was, as last seen: at its last scroll event, or the page's own scroll. */
    this.scrolledTo = scroller.scrollTop;
    /** @type {UserMessage | null} the prompt opened for editing last */
    this.edited = null;
    scroller.addEventListener('scroll', () => this.scrolled(), { passive: true });
    // The pane changed size with no scroll (the message box grew or shrank, a phone's keyboard
    // opened): the end stays in view if it was. The pane only: the conversation's own growth
    // goes through keepInView, and what the reader opens in it (Thinking, an edit) is theirs to
    // look at, not to be scrolled past.
    new ResizeObserver(() => this.keepInView(() => {})).observe(scroller);
    jump.addEventListener('click', () => {
      this.toLatest(true);
      this.focusLatest();
    });
  }

  /**
   * Puts the focus on the latest message (Jump to latest hides itself: the focus would be lost
   * to the page's start), so that the keyboard and a screen reader go on from there.
   */
  focusLatest() {
    const latest = /** @type {HTMLElement | undefined} */ ([...this.column.querySelectorAll('.message')].at(-1));
    if (!latest) return;
    latest.tabIndex = -1;
    latest.focus({ preventScroll: true }); // the scroll to it is on its way, maybe smoothly
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < NEAR_BOTTOM_PX;
  }

  /**
   * Whether the reader moved the pane up since the page last saw where it was (by any amount:
   * one ArrowUp is a wish to read). Not when the pane is at its very end: content that shrank
   * there moved it up, not the reader.
   */
  readerWentUp() {
    const s = this.scroller;
    return s.scrollTop < this.scrolledTo - 1 && s.scrollHeight - s.scrollTop - s.clientHeight > 1;
  }

  /** The pane was scrolled: by the reader, or by the page keeping the end in view. */
  scrolled() {
    if (this.readerWentUp()) this.following = false;
    else if (this.nearBottom()) this.following = true;
    this.scrolledTo = this.scroller.scrollTop;
    this.updateJump();
  }

  updateJump() {
    this.jump.hidden = this.following;
  }

  /** @param {boolean} [smoothly] */
  toLatest(smoothly = false) {
    const reduced = matchMedia('(prefers-reduced-motion: reduce)').matches;
    this.scroller.scrollTo({ top: this.scroller.scrollHeight, behavior: smoothly && !reduced ? 'smooth' : 'auto' });
    this.following = true;
    this.scrolledTo = this.scroller.scrollTop;
    this.jump.hidden = true;
  }

  /**
   * Runs `change`, then keeps the newest text in view if the page follows it (see `following`).
   * @param {() => void} change
   */
  keepInView(change) {
    // A scroll of the reader's whose event has not come yet (one comes a frame later) counts.
    if (this.readerWentUp()) this.following = false;
    change();
    if (this.following) this.scroller.scrollTop = this.scroller.scrollHeight;
    // The page's own scroll is where the reader's next one is measured from: in a browser both
    // may come in one scroll event.
    this.scrolledTo = this.scroller.scrollTop;
    this.updateJump();
  }

  /** Takes every message off the page (another conversation is shown). */
  clear() {
    for (const node of this.column.querySelectorAll('.message')) node.remove();
    this.edited = null;
    this.updateJump();
  }

  /**
   * @param {string} text
   * @param {UserActions} actions
   */
  addUser(text, actions) {
    const number = this.column.querySelectorAll('.message.from-user').length + 1;
    const view = new UserMessage(text, actions, (message) => this.mayEdit(message), number);
    this.keepInView(() => this.column.append(view.root));
    return view;
  }

  /**
   * One prompt is edited at a time: `message` may open its edit once the edit open on another
   * prompt is closed. Unless the reader changed the text there, which is not thrown away: that
   * edit stays open and takes the keyboard, and the reader is told to finish it first.
   * @param {UserMessage} message
   */
  mayEdit(message) {
    const open = this.editing();
    if (open && open !== message) {
      if (open.changed()) {
        open.focusEdit();
        this.announcer.say('Another message is being edited: save or cancel that edit first.');
        return false;
      }
      open.endEdit(false);
    }
    this.edited = message;
    return true;
  }

  /** The prompt being edited, if any. */
  editing() {
    return this.edited?.form ? this.edited : null;
  }

  /** @param {AnswerActions} actions */
  addAssistant(actions) {
    const number = this.column.querySelectorAll('.message.from-assistant').length + 1;
    const answer = new AnswerView(actions, this.announcer, number);
    this.column.append(answer.root);
    answer.onChange = (change) => this.keepInView(change);
    this.toLatest();
    return answer;
  }

  /**
   * While an answer streams in this conversation, the actions that would change it wait.
   * @param {boolean} answering
   */
  setAnswering(answering) {
    for (const node of this.column.querySelectorAll('button.waits-for-answer')) {
      /** @type {HTMLButtonElement} */ (node).disabled = answering;
    }
  }
}

/** A prompt on screen, with Copy and Edit; editing happens in place. */
export class UserMessage {
  /**
   * @param {string} text
   * @param {UserActions} actions
   * @param {(message: UserMessage) => boolean} [mayEdit]  whether it may open its edit now
   * @param {number} [number]  its place among the conversation's prompts, from 1 (in its Copy's name)
   */
  constructor(text, actions, mayEdit = () => true, number = 1) {
    this.text = text;
    this.mayEdit = mayEdit;
    this.actions = actions;
    const { root, actions: bar } = message('user');
    this.root = root;
    this.bubble = element('div', 'turn user');
    const paragraph = element('p', 'text');
    setBreakableText(paragraph, text); // a pasted blob must not freeze the page
    paragraph.dir = 'auto';
    this.bubble.append(paragraph);
    this.editButton = button('Edit', 'action waits-for-answer', () => actions.edit(this), 'edit');
    const copy = button('Copy', 'action', () => actions.copy(copy), 'copy');
    // Named for what it copies: a screen reader's list of buttons (or voice control) had a
    // "Copy" per message, none telling which.
    copy.setAttribute('aria-label', `Copy your message ${number}`);
    bar.append(copy, this.editButton);
    this.bar = bar;
    this.root.append(this.bubble, bar);
    /** @type {HTMLFormElement | null} */
    this.form = null;
    /** @type {HTMLTextAreaElement | null} the edit's text box, while it is open */
    this.box = null;
  }

  /**
   * Swaps the prompt for a text box holding it; `send` gets the edited text, `cancel` puts the
   * prompt back. `send` may refuse the text with a reason, shown on the box (which stays).
   * @param {(text: string) => string | void} send
   * @param {string} [text]  what the box opens with: the prompt, or the reader's unsent edit of it
   * @param {{focus?: boolean}} [options]  `focus`: the keyboard goes in the box (not when it is
   *   opened again while the reader is elsewhere)
   */
  startEdit(send, text = this.text, { focus = true } = {}) {
    if (this.form || !this.mayEdit(this)) return;
    const form = element('form', 'edit');
    // Refused once (too long, an answer still coming), it is tried again: a reason left on the
    // box kept a browser's own check from sending it at all.
    form.noValidate = true;
    form.setAttribute('aria-label', 'Edit your message');
    const box = element('textarea', 'edit-text');
    box.value = text;
    box.dir = 'auto';
    box.rows = Math.min(10, text.split('\n').length + 1);
    box.setAttribute('aria-label', 'Edit your message');
    const cancel = button('Cancel', 'action', () => this.endEdit());
    const submit = element('button', 'action primary', 'Save and send');
    submit.type = 'submit';
    const row = element('div', 'edit-actions');
    row.append(cancel, submit);
    form.append(box, row);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (!box.value.trim()) return;
      const refused = send(box.value);
      box.setCustomValidity(refused || '');
      if (refused) box.reportValidity();
    });
    // Enter is Save and send, which replaces what follows the prompt: not an Enter meant for what
    // opened the edit (Edit, a link, Back, Undo), pressed twice or held down, which lands here
    // once the edit has taken the keyboard. Once the reader has typed in it, Enter is theirs.
    let openedAt = performance.now();
    box.addEventListener('input', () => {
      box.setCustomValidity('');
      openedAt = -Infinity;
    });
    box.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        event.stopPropagation();
        this.endEdit();
      } else if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        if (!event.repeat && performance.now() - openedAt >= SECOND_PRESS_MS) form.requestSubmit();
      }
    });
    this.form = form;
    this.box = box;
    this.bubble.hidden = true;
    this.bar.hidden = true;
    this.root.insertBefore(form, this.bar);
    if (focus) box.focus();
    box.setSelectionRange(box.value.length, box.value.length);
  }

  /** Whether the reader changed the text of the edit open. */
  changed() {
    return this.changedText() !== null;
  }

  /** The text of the edit open when the reader changed it, else null. */
  changedText() {
    return this.box && this.box.value !== this.text ? this.box.value : null;
  }

  /** Puts the keyboard in the edit open. */
  focusEdit() {
    this.box?.focus();
  }

  /** @param {boolean} [focus]  the keyboard goes back to Edit */
  endEdit(focus = true) {
    const wasOpen = Boolean(this.form);
    this.form?.remove();
    this.form = null;
    this.box = null;
    this.bubble.hidden = false;
    this.bar.hidden = false;
    if (focus) this.editButton.focus();
    if (wasOpen) this.actions.editClosed?.();
  }
}

/** @type {Record<string, string>} */
const ENDINGS = {
  cancelled: 'Stopped',
  error: 'The answer failed',
  timeout: 'The answer took too long and was cut off',
  lost: 'This answer could not be recovered',
  abandoned: 'Nobody is answering this any more',
  refused: 'The prompt was not accepted',
  rejected: 'The prompt was not accepted',
};

/** How an answer that completed before Stop reached the server ends. */
const STOPPED_TOO_LATE = 'The answer had already finished before Stop took effect';

/**
 * What a screen reader is told of a finished block: its text, shortened, with a code block said
 * only as "Code block, <language>, <n> lines" (read out, an 800-line block took minutes; its
 * text was once the label and the Copy code button glued to the code: "pythonCopy codedef").
 * @param {HTMLElement} block
 */
function spoken(block) {
  const copy = /** @type {HTMLElement} */ (block.cloneNode(true));
  for (const frame of copy.querySelectorAll('.code-block')) {
    const language = frame.querySelector('.code-language')?.textContent || 'text';
    const lines = (frame.querySelector('code')?.textContent ?? '').replace(/\n$/, '').split('\n').length;
    frame.replaceWith(` Code block, ${language}, ${lines} ${lines === 1 ? 'line' : 'lines'}. `);
  }
  return shortened((copy.textContent ?? '').replace(/\s+/g, ' ').trim());
}

/**
 * Whether the reader is in `node`: text selected in it, or the focus on something in it.
 * @param {HTMLElement} node
 */
function inUse(node) {
  const selection = document.getSelection();
  const selected =
    selection && !selection.isCollapsed && (node.contains(selection.anchorNode) || node.contains(selection.focusNode));
  return Boolean(selected) || (document.activeElement !== document.body && node.contains(document.activeElement));
}

/**
 * Which of `nodes` holds the focus, and on what kind of control (`button.copy-code`), to put it
 * back on the same control of the block drawn in its place: the answer's end draws again the
 * block the reader is in, and the focus fell to the page's start.
 * @param {HTMLElement[]} nodes
 * @returns {{offset: number, selector: string} | null}
 */
function focusWithin(nodes) {
  const active = document.activeElement;
  if (!(active instanceof HTMLElement) || !active.classList[0]) return null;
  const offset = nodes.findIndex((node) => node !== active && node.contains(active));
  return offset < 0 ? null : { offset, selector: `${active.tagName.toLowerCase()}.${active.classList[0]}` };
}

/**
 * The key of a code block drawn plain while it arrives: never a block's key, so once finished
 * it is rendered again (highlighted), even if its text did not change.
 * @param {import('./blocks.js').Block} block
 */
const growingKey = (block) => `\u0000growing\u0000${block.key}`;

/** One answer on screen: its thinking, its answer, how it ended, and its actions. */
export class AnswerView {
  /**
   * @param {AnswerActions} actions
   * @param {Announcer} announcer
   * @param {number} [number]  its place among the conversation's answers, from 1 (in its Copy
   *   buttons' names)
   */
  constructor(actions, announcer, number = 1) {
    this.actions = actions;
    this.announcer = announcer;
    this.number = number;
    const { root, actions: bar } = message('assistant');
    this.root = root;
    this.bar = bar;
    this.turn = element('div', 'turn assistant');
    this.turn.setAttribute('aria-busy', 'true');
    /** @type {HTMLDetailsElement | null} */
    this.thinkingBlock = null;
    /** @type {HTMLParagraphElement | null} */
    this.thinkingText = null;
    this.thinkingShown = ''; // the thinking as thinkingText shows it
    this.answer = element('div', 'answer markdown');
    this.cursor = element('span', 'cursor');
    this.cursor.setAttribute('aria-hidden', 'true');
    this.turn.append(this.answer, this.cursor);
    this.root.append(this.turn);
    this.answerText = '';
    this.thinking = '';
    this.frame = 0;
    /** A render waiting for its turn (see RENDER_SPACING), or a held block's recheck. */
    this.timer = 0;
    /** When the next render may run (performance.now()). */
    this.nextRender = 0;
    this.ended = false;
    /** @type {string[]} the keys of the blocks on screen (see blocks.js) */
    this.keys = [];
    /** @type {HTMLElement[]} */
    this.blocks = [];
    /** How many blocks were read out to screen readers. */
    this.announced = 0;
    /** Whether screen readers were told that the answer has started. */
    this.startSaid = false;
    /** @type {(change: () => void) => void} */
    this.onChange = (change) => change();
    /** @type {HTMLParagraphElement | null} how it ended, unless it completed */
    this.notice = null;
    /** @type {HTMLButtonElement | null} */
    this.retryButton = null;
    /** @type {HTMLParagraphElement | null} what is going on with it while it arrives */
    this.note = null;
  }

  /**
   * Says what is going on with the answer while it arrives (the server cannot be reached right
   * now, Stop is trying again), or nothing ('').
   * @param {string} text
   */
  setNote(text) {
    if (this.ended || (this.note?.textContent ?? '') === text) return;
    if (!text) {
      const old = this.note;
      this.note = null;
      if (old) this.onChange(() => old.remove());
      return;
    }
    if (!this.note) {
      // No live region: inside an answer that is busy it is not heard; the page's announcer
      // says the note.
      const note = element('p', 'note', '');
      this.note = note;
      this.onChange(() => this.turn.append(note));
    }
    this.note.textContent = text;
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
      this.thinkingText.dir = 'auto';
      this.thinkingBlock.append(this.thinkingText);
      this.turn.insertBefore(this.thinkingBlock, this.answer);
    }
    // Said once, as the first of it arrives: the answer itself is said only a finished block at
    // a time (never token by token), and nothing told a listener that it had started.
    if (!this.startSaid && (answerText || thinking)) {
      this.startSaid = true;
      this.announcer.say(answerText ? 'relaychat is answering…' : 'relaychat is thinking…');
    }
    this.answerText = answerText;
    this.thinking = thinking;
    this.schedule();
  }

  /**
   * Shows an answer that was partly there before this view (its conversation shown again, the
   * page reloaded): a screen reader hears only what arrives from now on, not all of it again.
   * @param {string} answerText
   * @param {string} thinking
   */
  showArrived(answerText, thinking) {
    this.announced = finishedCount(splitBlocks(answerText), false);
    this.startSaid ||= Boolean(answerText || thinking); // said when it started, not again
    this.show(answerText, thinking);
  }

  // Rendering once per animation frame, not once per publication, keeps long answers cheap
  // however fast the tokens come; and no sooner than RENDER_SPACING allows.
  schedule() {
    if (this.frame || this.timer) return;
    const wait = this.nextRender - performance.now();
    if (wait > 0) {
      this.timer = window.setTimeout(() => {
        this.timer = 0;
        this.schedule();
      }, wait);
      return;
    }
    this.frame = requestAnimationFrame(() => this.render());
  }

  /** Cancels the render on its way, if any. */
  unschedule() {
    if (this.frame) cancelAnimationFrame(this.frame);
    clearTimeout(this.timer);
    this.frame = 0;
    this.timer = 0;
  }

  render() {
    this.frame = 0;
    const start = performance.now();
    this.onChange(() => {
      if (this.thinkingText && this.thinkingShown !== this.thinking) {
        if (this.thinkingShown && this.thinking.startsWith(this.thinkingShown)) {
          appendBreakable(this.thinkingText, this.thinking.slice(this.thinkingShown.length));
        } else {
          setBreakableText(this.thinkingText, this.thinking);
        }
        this.thinkingShown = this.thinking;
      }
      this.renderBlocks();
    });
    const end = performance.now();
    this.nextRender = end + (end - start) * RENDER_SPACING;
  }

  /**
   * Renders the blocks that changed (the growing last one, any whose reference links got their
   * definitions), leaving the others as they are. A code block still arriving grows in place.
   */
  renderBlocks() {
    const split = splitBlocks(this.answerText);
    const finished = finishedCount(split, this.ended);
    const blocks = withDefinitions(split, finished);
    const kept = unchangedCount(this.keys, blocks);
    if (!this.grewInPlace(blocks, finished, kept)) this.redraw(blocks, finished, kept);
    // Screen readers hear each block once, when it is finished, not the whole answer per frame
    // (nor a block held as it was, until it is drawn as it is).
    const upTo = Math.min(finished, unchangedCount(this.keys, blocks));
    if (upTo > this.announced) {
      // Shortened as a whole too: rare renders (or an answer caught up from the snapshot)
      // finish many blocks at once.
      const blocks = this.blocks.slice(this.announced, upTo).map(spoken);
      this.announcer.say(shortened(blocks.join(' '), ANNOUNCEMENTS_MAX));
      this.announced = upTo;
    }
    this.nameCodeCopies();
  }

  /**
   * Names each Copy code button by its block's place in the answer: out of their context (a
   * screen reader's list of buttons, voice control) a dozen "Copy code" could not be told apart.
   */
  nameCodeCopies() {
    this.answer.querySelectorAll('button.copy-code').forEach((copy, index) => {
      const name = `Copy code block ${index + 1} of answer ${this.number}`;
      if (copy.getAttribute('aria-label') !== name) copy.setAttribute('aria-label', name);
    });
  }

  /**
   * Appends what arrived to the growing last block, if that is a code block drawn plain: the
   * blocks before it unchanged, the same language, its text grown.
   * @param {import('./blocks.js').Block[]} blocks
   * @param {number} finished
   * @param {number} kept
   */
  grewInPlace(blocks, finished, kept) {
    const last = blocks.length - 1;
    const block = blocks[last];
    if (finished !== last || kept !== last || this.blocks.length !== blocks.length) return false;
    if (block.token.type !== 'code' || !growCode(this.blocks[last], /** @type {import('marked').Tokens.Code} */ (block.token))) return false;
    this.keys[last] = growingKey(block);
    return true;
  }

  /**
   * Draws the blocks from `kept` on again. While the answer arrives, a block the reader is in
   * (text selected in it, the focus in it) is left as it was until they leave it.
   * @param {import('./blocks.js').Block[]} blocks
   * @param {number} finished
   * @param {number} kept
   */
  redraw(blocks, finished, kept) {
    const nodes = this.blocks.splice(kept);
    const keys = this.keys.splice(kept);
    const held = this.ended ? undefined : nodes.find(inUse);
    const focus = focusWithin(nodes.filter((node) => node !== held));
    for (const node of nodes) if (node !== held) node.remove();
    const actions = { copyCode: this.actions.copyCode };
    blocks.slice(kept).forEach((block, offset) => {
      const old = nodes[offset];
      if (old && old === held) {
        this.blocks.push(old);
        this.keys.push(keys[offset]);
        return;
      }
      const growingCode = kept + offset >= finished && block.token.type === 'code';
      const node = growingCode
        ? renderGrowingCode(/** @type {import('marked').Tokens.Code} */ (block.token), actions)
        : renderBlock(block.token, actions);
      const previous = this.blocks.at(-1);
      if (previous) previous.after(node);
      else this.answer.prepend(node);
      this.blocks.push(node);
      this.keys.push(growingCode ? growingKey(block) : block.key);
    });
    if (held && !this.blocks.includes(held)) held.remove(); // the answer got shorter: it goes
    if (focus) {
      const control = this.blocks[kept + focus.offset]?.querySelector(focus.selector);
      if (control instanceof HTMLElement) control.focus({ preventScroll: true });
    }
    if (held) {
      // Caught up once the reader has left it, whether or not more arrives meanwhile.
      clearTimeout(this.timer);
      this.timer = window.setTimeout(() => {
        this.timer = 0;
        this.schedule();
      }, HELD_RECHECK_MS);
    }
  }

  /**
   * Shows the answer as ended: the cursor goes, any ending but `complete` is explained, and
   * its actions appear.
   * @param {string} reason
   * @param {string} [message]
   * @param {{restored?: boolean, stopPressed?: boolean}} [options]  `restored`: shown from
   *   storage, nothing to announce; `stopPressed`: the reader pressed Stop (an answer that
   *   completed all the same says why it was not stopped)
   */
  finish(reason, message, { restored = false, stopPressed = false } = {}) {
    this.unschedule();
    // Stopped: the reader wanted no more of it, so the rest of it is not read out either.
    if (restored || reason === 'cancelled') this.announced = Number.MAX_SAFE_INTEGER;
    this.setNote('');
    this.ended = true;
    this.render();
    if (this.thinkingBlock) this.thinkingBlock.open = false;
    this.cursor.remove();
    this.turn.setAttribute('aria-busy', 'false');
    // Stop came too late: the answer had finished before the server heard it, and ends
    // complete. Said, or the reader who pressed Stop is left to wonder why it was not stopped.
    const tooLate = reason === 'complete' && stopPressed;
    if (reason !== 'complete' || tooLate) {
      const ending = tooLate ? STOPPED_TOO_LATE : ENDINGS[reason] || 'The answer ended unexpectedly';
      const note = element('p', `notice ${reason}`, message ? `${ending}: ${message}.` : `${ending}.`);
      // No live region: one inserted with its text in it is missed by some screen readers, and
      // inside the page it is not heard while the conversations drawer makes it inert. The
      // announcer (outside the page, there from the start) says it.
      if (!restored) this.announcer.say(note.textContent ?? '');
      this.notice = note;
      this.onChange(() => this.turn.append(note));
    } else if (!restored) {
      // After its last blocks (said by the render above): a listener cannot tell a long
      // paragraph still being written from the end.
      this.announcer.say('Answer complete.');
    }
    // Nothing arrived (stopped before its first word, a prompt refused or not sent): no Copy,
    // which would have emptied the clipboard.
    if (this.answerText.trim()) {
      const copy = button('Copy', 'action', () => this.actions.copy(this.answerText, copy), 'copy');
      copy.setAttribute('aria-label', `Copy answer ${this.number}`);
      this.bar.append(copy);
    }
    this.onChange(() => this.root.append(this.bar));
  }

  /** Offers Regenerate: this is the conversation's last answer. */
  offerRegenerate() {
    if (this.bar.querySelector('.regenerate')) return;
    this.bar.append(button('Regenerate', 'action regenerate waits-for-answer', () => this.actions.regenerate(), 'regenerate'));
  }

  /**
   * Offers to send the prompt again, on an answer that did not complete.
   * @param {() => void} retry
   */
  offerRetry(retry) {
    this.offerInNotice(button('Retry', 'retry waits-for-answer', retry, 'regenerate'));
  }

  /**
   * Offers to edit the prompt, on an answer whose prompt the server refused as it was (Retry
   * would send it as it was, to be refused again).
   * @param {() => void} edit
   */
  offerEdit(edit) {
    this.offerInNotice(button('Edit prompt', 'retry waits-for-answer', edit, 'edit'));
  }

  /**
   * Puts Retry or Edit prompt in the notice of how the answer ended; one of them at most.
   * @param {HTMLButtonElement} node
   */
  offerInNotice(node) {
    if (!this.notice || this.retryButton) return;
    this.retryButton = node;
    this.notice.append(' ', node);
  }

  /** Takes Retry (or Edit prompt) and Regenerate back (a newer prompt was sent). */
  withdrawRetry() {
    this.retryButton?.remove();
    this.retryButton = null;
    this.bar.querySelector('.regenerate')?.remove();
  }

  /** Takes this answer off the page (it is being asked again). */
  remove() {
    this.unschedule();
    this.root.remove();
  }
}
