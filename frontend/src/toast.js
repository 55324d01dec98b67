// @ts-check
// A short notice with one action ("Conversation deleted" with Undo): shown for a while, or until
// the next one takes its place. It stays while the pointer is over it or the keyboard is in it
// (then counts down again from the start), so that its button cannot vanish under a reader who
// is about to use it. Screen readers hear of it through the page's announcer, not from here.

/** How long a notice stays on screen. */
export const TOAST_MS = 10_000;

export class Toast {
  /**
   * @param {HTMLElement} root  the notice, hidden while there is none
   * @param {HTMLElement} text  its message
   * @param {HTMLButtonElement} button  its action
   * @param {number} [ms]  how long it stays
   */
  constructor(root, text, button, ms = TOAST_MS) {
    this.root = root;
    this.text = text;
    this.button = button;
    this.ms = ms;
    /** @type {(() => void) | null} what the button does, while the notice is shown */
    this.action = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.pointed = false;
    this.focused = false;
    button.addEventListener('click', () => this.act());
    root.addEventListener('pointerenter', () => this.hold({ pointed: true }));
    root.addEventListener('pointerleave', () => this.hold({ pointed: false }));
    root.addEventListener('focusin', () => this.hold({ focused: true }));
    root.addEventListener('focusout', (event) => {
      if (!root.contains(/** @type {Node | null} */ (event.relatedTarget))) this.hold({ focused: false });
    });
  }

  /**
   * Shows `message` with a button labelled `label` that does `action`, in place of the notice
   * shown before (whose action is then forgotten).
   * @param {string} message
   * @param {string} label
   * @param {() => void} action
   */
  show(message, label, action) {
    this.text.textContent = message;
    this.button.textContent = label;
    this.action = action;
    this.root.hidden = false;
    this.countDown();
  }

  /** Whether a notice is shown. */
  get shown() {
    return this.action !== null;
  }

  /** Does the notice's action, once: the notice goes. */
  act() {
    const action = this.action;
    this.hide();
    action?.();
  }

  /** Takes the notice away; its action is forgotten. */
  hide() {
    clearTimeout(this.timer);
    this.action = null;
    this.root.hidden = true;
    // Hidden, it has neither (a browser need not say that focus or the pointer left it).
    this.pointed = false;
    this.focused = false;
  }

  /**
   * The reader's pointer or keyboard arrived on the notice, or left it.
   * @param {{pointed?: boolean, focused?: boolean}} where
   */
  hold({ pointed = this.pointed, focused = this.focused }) {
    this.pointed = pointed;
    this.focused = focused;
    if (this.shown) this.countDown();
  }

  /** Counts the notice's time from the start, unless the reader is on it. */
  countDown() {
    clearTimeout(this.timer);
    if (this.pointed || this.focused) return;
    this.timer = setTimeout(() => this.hide(), this.ms);
  }
}
