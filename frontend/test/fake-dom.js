// @ts-check
// A fake of the DOM, as much of it as the conversation's view (src/view.js) and the list
// (src/sidebar.js) use, for their tests: elements in a tree with attributes, classes, `dataset`
// and text; simple selectors (a tag, `.class`, `#id`, `[attr]`, `[attr="value"]`, `:disabled`,
// `*`, and descendants); events on the element itself (no bubbling); the focus, which a node
// taken out of the page loses; no layout, but a pane whose scrolling a test drives, and
// ResizeObservers a test calls. `installDom()` puts it on globalThis. Not a test file itself.

/** Attributes that elements reflect as properties of the same name. */
const REFLECTED = ['id', 'dir', 'title', 'href', 'type', 'rel', 'target'];

class FakeNode extends EventTarget {
  /** @type {FakeElement | null} */
  parentNode = null;
  /** @type {FakeNode[]} */
  childNodes = [];

  /** @returns {string} */
  get textContent() {
    return this.childNodes.map((node) => node.textContent).join('');
  }

  /** @returns {boolean} */
  get isConnected() {
    /** @type {FakeNode | null} */
    let node = this;
    while (node.parentNode) node = node.parentNode;
    return node === fakeDocument.body;
  }

  remove() {
    const parent = this.parentNode;
    if (!parent) return;
    parent.childNodes.splice(parent.childNodes.indexOf(this), 1);
    this.parentNode = null;
  }

  /** @param {...(FakeNode | string)} nodes */
  replaceWith(...nodes) {
    const parent = this.parentNode;
    if (!parent) return;
    for (const node of nodes) parent.insertBefore(asNode(node), this);
    this.remove();
  }

  /** @param {...(FakeNode | string)} nodes */
  after(...nodes) {
    const parent = this.parentNode;
    if (!parent) return;
    const next = parent.childNodes[parent.childNodes.indexOf(this) + 1] ?? null;
    for (const node of nodes) parent.insertBefore(asNode(node), next);
  }
}

class FakeText extends FakeNode {
  /** @param {string} data */
  constructor(data) {
    super();
    this.data = data;
    this.nodeType = 3;
  }

  get textContent() {
    return this.data;
  }

  set textContent(text) {
    this.data = text;
  }

  /** @param {string} text */
  appendData(text) {
    this.data += text;
  }
}

/** @param {FakeNode | string} node */
const asNode = (node) => (typeof node === 'string' ? new FakeText(node) : node);

class FakeElement extends FakeNode {
  /** @param {string} tagName */
  constructor(tagName) {
    super();
    this.tagName = tagName.toUpperCase();
    this.nodeType = 1;
    /** @type {Map<string, string>} */
    this.attributes = new Map();
    this.disabled = false;
    this.value = '';
    this.tabIndex = ['A', 'BUTTON', 'INPUT', 'SELECT', 'TEXTAREA'].includes(this.tagName) ? 0 : -1;
    this.validationMessage = '';
    /** @type {Record<string, string>} */
    this.style = {};
    const attributes = this.attributes;
    const attributeOf = (/** @type {string | symbol} */ key) =>
      `data-${String(key).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    this.dataset = new Proxy(/** @type {Record<string, string>} */ ({}), {
      get: (_, key) => attributes.get(attributeOf(key)),
      set: (_, key, value) => Boolean(attributes.set(attributeOf(key), String(value))),
      deleteProperty: (_, key) => attributes.delete(attributeOf(key)) || true,
    });
    for (const name of REFLECTED) {
      Object.defineProperty(this, name, {
        get: () => attributes.get(name) ?? '',
        set: (value) => attributes.set(name, String(value)),
      });
    }
  }

  /** @param {string} name */
  getAttribute(name) {
    return this.attributes.get(name) ?? null;
  }

  /**
   * @param {string} name
   * @param {string} value
   */
  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }

  /** @param {string} name */
  removeAttribute(name) {
    this.attributes.delete(name);
  }

  /** @param {string} name */
  hasAttribute(name) {
    return this.attributes.has(name);
  }

  get className() {
    return this.attributes.get('class') ?? '';
  }

  set className(value) {
    this.attributes.set('class', value);
  }

  get classList() {
    const names = () => this.className.split(/\s+/).filter(Boolean);
    const set = (/** @type {string[]} */ list) => {
      this.className = list.join(' ');
    };
    return {
      contains: (/** @type {string} */ name) => names().includes(name),
      add: (/** @type {string[]} */ ...add) => set([...new Set([...names(), ...add])]),
      remove: (/** @type {string[]} */ ...gone) => set(names().filter((n) => !gone.includes(n))),
      toggle: (/** @type {string} */ name, /** @type {boolean | undefined} */ on) => {
        const wanted = on ?? !names().includes(name);
        set(wanted ? [...new Set([...names(), name])] : names().filter((n) => n !== name));
        return wanted;
      },
      [Symbol.iterator]: () => names()[Symbol.iterator](),
    };
  }

  get hidden() {
    return this.attributes.has('hidden');
  }

  set hidden(value) {
    if (value) this.attributes.set('hidden', '');
    else this.attributes.delete('hidden');
  }

  get textContent() {
    return super.textContent;
  }

  set textContent(text) {
    this.replaceChildren(...(text ? [text] : []));
  }

  get children() {
    return /** @type {FakeElement[]} */ (this.childNodes.filter((node) => node instanceof FakeElement));
  }

  get childElementCount() {
    return this.children.length;
  }

  get firstElementChild() {
    return this.children[0] ?? null;
  }

  get lastChild() {
    return this.childNodes.at(-1) ?? null;
  }

  get parentElement() {
    return this.parentNode;
  }

  /**
   * @param {FakeNode} node
   * @param {FakeNode | null} before
   */
  insertBefore(node, before) {
    node.remove();
    const place = before ? this.childNodes.indexOf(before) : -1;
    this.childNodes.splice(place < 0 ? this.childNodes.length : place, 0, node);
    node.parentNode = this;
    return node;
  }

  /** @param {...(FakeNode | string)} nodes */
  append(...nodes) {
    for (const node of nodes) this.insertBefore(asNode(node), null);
  }

  /** @param {...(FakeNode | string)} nodes */
  prepend(...nodes) {
    const first = this.childNodes[0] ?? null;
    for (const node of nodes) this.insertBefore(asNode(node), first);
  }

  /** @param {...(FakeNode | string)} nodes */
  replaceChildren(...nodes) {
    for (const node of [...this.childNodes]) node.remove();
    this.append(...nodes);
  }

  /** @param {FakeNode | null} node */
  contains(node) {
    for (let at = node; at; at = at.parentNode) if (at === this) return true;
    return false;
  }

  /** @returns {FakeElement[]} */
  descendants() {
    return this.children.flatMap((child) => [child, ...child.descendants()]);
  }

  /** @param {string} selector */
  matches(selector) {
    const [last, ...before] = selector.trim().split(/\s+/).reverse();
    if (!matchesCompound(this, last)) return false;
    /** @type {FakeElement | null} */
    let at = this.parentNode;
    for (const compound of before) {
      while (at && !matchesCompound(at, compound)) at = at.parentNode;
      if (!at) return false;
      at = at.parentNode;
    }
    return true;
  }

  /** @param {string} selector */
  querySelectorAll(selector) {
    return this.descendants().filter((node) => node.matches(selector));
  }

  /** @param {string} selector */
  querySelector(selector) {
    return this.querySelectorAll(selector)[0] ?? null;
  }

  /** @param {string} selector */
  closest(selector) {
    /** @type {FakeElement | null} */
    let at = this;
    while (at && !at.matches(selector)) at = at.parentNode;
    return at;
  }

  focus() {
    if (this.isConnected && !this.disabled) fakeDocument.focused = this;
  }

  blur() {
    if (fakeDocument.focused === this) fakeDocument.focused = null;
  }

  click() {
    if (!this.disabled) this.dispatchEvent(new Event('click', { cancelable: true }));
  }

  getClientRects() {
    for (let at = /** @type {FakeElement | null} */ (this); at; at = at.parentNode) if (at.hidden) return [];
    return [{}];
  }

  setSelectionRange() {}

  select() {}

  /** @param {string} message */
  setCustomValidity(message) {
    this.validationMessage = message;
  }

  reportValidity() {
    return !this.validationMessage;
  }

  requestSubmit() {
    this.dispatchEvent(new Event('submit', { cancelable: true }));
  }
}

/**
 * Whether `node` matches one compound selector: `button.action[aria-current="page"]`.
 * @param {FakeElement} node
 * @param {string} compound
 */
function matchesCompound(node, compound) {
  const parts = compound.match(/^[\w*-]+|\.[\w-]+|#[\w-]+|\[[\w-]+(?:="[^"]*")?\]|:disabled/g) ?? [];
  if (parts.join('') !== compound) throw new Error(`the fake DOM does not know the selector ${compound}`);
  return parts.every((part) => {
    if (part === '*') return true;
    if (part === ':disabled') return node.disabled;
    if (part.startsWith('.')) return node.classList.contains(part.slice(1));
    if (part.startsWith('#')) return node.getAttribute('id') === part.slice(1);
    if (part.startsWith('[')) {
      const [, name, value] = /** @type {RegExpMatchArray} */ (part.match(/^\[([\w-]+)(?:="([^"]*)")?\]$/));
      return value === undefined ? node.hasAttribute(name) : node.getAttribute(name) === value;
    }
    return node.tagName === part.toUpperCase();
  });
}

/**
 * A pane that scrolls (the conversation): `clientHeight` tall, showing `scrollHeight` of content,
 * its `scrollTop` kept between 0 and the end. A scroll event follows every change of
 * `scrollTop`, as in a browser (there, a frame later).
 */
export class FakePane extends FakeElement {
  /**
   * @param {number} clientHeight
   * @param {number} scrollHeight
   */
  constructor(clientHeight, scrollHeight) {
    super('div');
    this.clientHeight = clientHeight;
    this.scrollHeight = scrollHeight;
    this.top = 0;
  }

  get scrollTop() {
    return this.top;
  }

  set scrollTop(value) {
    const top = Math.max(0, Math.min(value, this.scrollHeight - this.clientHeight));
    if (top === this.top) return;
    this.top = top;
    this.dispatchEvent(new Event('scroll'));
  }

  /** @param {{top: number}} to */
  scrollTo({ top }) {
    this.scrollTop = top;
  }

  /**
   * The reader scrolls by `by` pixels (up: less than 0).
   * @param {number} by
   */
  scrollBy(by) {
    this.scrollTop += by;
  }

  /** How far the end of the content is below what the pane shows. */
  get belowView() {
    return this.scrollHeight - this.scrollTop - this.clientHeight;
  }
}

/** The ResizeObservers made, so that a test can say that what they observe changed size. */
export const resizeObservers = {
  /** @type {{callback: () => void, targets: Set<unknown>}[]} */
  made: [],
  /**
   * Calls the observers of `target`, as a browser does once it changed size.
   * @param {unknown} target
   */
  resized(target) {
    for (const { callback, targets } of this.made) if (targets.has(target)) callback();
  },
};

class FakeResizeObserver {
  /** @param {() => void} callback */
  constructor(callback) {
    this.targets = new Set();
    resizeObservers.made.push({ callback, targets: this.targets });
  }

  /** @param {unknown} target */
  observe(target) {
    this.targets.add(target);
  }

  disconnect() {
    this.targets.clear();
  }
}

const fakeDocument = {
  body: new FakeElement('body'),
  /** @type {FakeElement | null} */
  focused: null,
  get activeElement() {
    return this.focused?.isConnected ? this.focused : this.body;
  },
  /** @param {string} tag */
  createElement: (tag) => new FakeElement(tag),
  /**
   * @param {string} _namespace
   * @param {string} tag
   */
  createElementNS: (_namespace, tag) => new FakeElement(tag),
  /** @param {string} text */
  createTextNode: (text) => new FakeText(text),
  getSelection: () => ({ isCollapsed: true, anchorNode: null, focusNode: null }),
  /** @param {string} selector */
  querySelectorAll: (selector) => fakeDocument.body.querySelectorAll(selector),
};

/**
 * Puts the fake DOM on globalThis (`document`, `HTMLElement`, `ResizeObserver`, `CSS.escape`,
 * `matchMedia`, `requestAnimationFrame`, `window`), with an empty page.
 */
export function installDom() {
  const globals = {
    window: globalThis,
    document: fakeDocument,
    Node: FakeNode,
    Element: FakeElement,
    HTMLElement: FakeElement,
    Text: FakeText,
    ResizeObserver: FakeResizeObserver,
    CSS: { escape: (/** @type {string} */ text) => text.replace(/["\\]/g, '\\$&') },
    matchMedia: () => ({ matches: false }),
    requestAnimationFrame: (/** @type {() => void} */ callback) => setTimeout(callback, 0),
    cancelAnimationFrame: (/** @type {number} */ frame) => clearTimeout(frame),
  };
  for (const [name, value] of Object.entries(globals)) {
    Object.defineProperty(globalThis, name, { value, configurable: true, writable: true });
  }
  fakeDocument.body.replaceChildren();
  fakeDocument.focused = null;
  resizeObservers.made.length = 0;
}

/**
 * A new element, as the page would make it (typed as the real one, for the code under test).
 * @param {string} tag
 * @returns {HTMLElement}
 */
export const make = (tag) => /** @type {HTMLElement} */ (/** @type {unknown} */ (new FakeElement(tag)));

/**
 * Fires a key press at `target`; whether the page took it (preventDefault).
 * @param {EventTarget} target
 * @param {string} key
 * @param {{repeat?: boolean}} [options]  `repeat`: the key is held down (the browser's auto-repeat)
 */
export function press(target, key, { repeat = false } = {}) {
  const event = Object.assign(new Event('keydown', { cancelable: true }), { key, repeat, shiftKey: false, isComposing: false });
  target.dispatchEvent(event);
  return event.defaultPrevented;
}
