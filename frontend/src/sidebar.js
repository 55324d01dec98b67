// @ts-check
// The list of conversations: newest first, each a link to open it (`#<id>`, so it can open in a
// new tab too) with Rename and Delete, and a mark on one whose answer is arriving or ended
// unseen (src/unseen.js). Titles are set through textContent only, their direction (left to
// right, right to left) taken from their own text.
import { icon } from './icons.js';
import { element } from './markdown.js';
import { MARK_WORDS } from './unseen.js';

/** @import { Summary } from './conversation.js' */
/** @import { Mark } from './unseen.js' */

/**
 * @typedef {object} ListActions
 * @property {(id: string, title: string) => void} rename
 * @property {(id: string) => void} remove
 * @property {() => void} opened  a conversation was picked (closes the list on a phone)
 */

/**
 * @param {string} label
 * @param {'edit' | 'trash'} name
 * @param {string} className
 */
function iconButton(label, name, className) {
  const node = element('button', `icon-button ${className}`);
  node.type = 'button';
  node.setAttribute('aria-label', label);
  node.title = label;
  node.append(icon(name));
  return node;
}

/**
 * A mark's dot, named in words (the link's name says it after the title).
 * @param {Mark} mark
 */
function markDot(mark) {
  const dot = element('span', `mark ${mark}`);
  dot.setAttribute('role', 'img');
  dot.setAttribute('aria-label', MARK_WORDS[mark]);
  dot.title = MARK_WORDS[mark];
  return dot;
}

/**
 * The controls in `root` that Tab reaches, in order.
 * @param {HTMLElement} root
 * @returns {HTMLElement[]}
 */
export function tabbableIn(root) {
  const candidates = root.querySelectorAll('a[href], button, input, select, textarea, [tabindex]');
  return /** @type {HTMLElement[]} */ ([...candidates]).filter(
    (node) => node.tabIndex >= 0 && !node.matches(':disabled') && node.getClientRects().length > 0,
  );
}

export class ConversationList {
  /**
   * @param {HTMLUListElement} list
   * @param {HTMLElement} empty  shown while there is no conversation
   * @param {ListActions} actions
   */
  constructor(list, empty, actions) {
    this.list = list;
    this.empty = empty;
    this.actions = actions;
    /** @type {{conversations: Summary[], current: string, marks: Map<string, Mark>} | null} a render put off while renaming */
    this.pending = null;
    this.renaming = false;
  }

  /**
   * @param {Summary[]} conversations  newest first
   * @param {string} current  the id of the conversation on screen
   * @param {Map<string, Mark>} [marks]  by conversation
   */
  render(conversations, current, marks = new Map()) {
    if (this.renaming) {
      this.pending = { conversations, current, marks };
      return;
    }
    // Keep the keyboard where it was: on the same control of the same conversation.
    const focused = document.activeElement;
    const focusedItem = focused instanceof HTMLElement && this.list.contains(focused) ? focused.closest('li') : null;
    const focusKey = focusedItem && focused ? `${focusedItem.dataset.id}|${focused.className}` : null;
    const place = focusedItem ? [...this.list.children].indexOf(focusedItem) : -1;
    this.list.replaceChildren(...conversations.map((c) => this.item(c, c.id === current, marks.get(c.id))));
    this.empty.hidden = conversations.length > 0;
    if (focusKey) {
      const [id, className] = focusKey.split('|');
      const again = [...this.list.querySelectorAll(`li[data-id="${CSS.escape(id)}"] *`)].find(
        (node) => node instanceof HTMLElement && node.className === className,
      );
      // Its conversation went (deleted): to the one now in its place, or the last, rather than
      // the list's first, which scrolled a long list back to its top.
      const links = this.list.querySelectorAll('a');
      const near = links[Math.min(place, links.length - 1)];
      /** @type {HTMLElement | undefined} */ (again ?? near)?.focus();
    }
  }

  /**
   * Puts the keyboard on a conversation's link.
   * @param {string} id
   */
  focusItem(id) {
    /** @type {HTMLElement | null} */ (this.list.querySelector(`li[data-id="${CSS.escape(id)}"] a`))?.focus();
  }

  /**
   * @param {Summary} conversation
   * @param {boolean} current
   * @param {Mark} [mark]
   */
  item(conversation, current, mark) {
    const item = element('li', 'conversation-item');
    item.dataset.id = conversation.id;
    const link = element('a', 'open');
    const title = element('span', 'title', conversation.title);
    title.dir = 'auto';
    link.append(title);
    if (mark) link.append(' ', markDot(mark));
    link.href = `#${conversation.id}`;
    if (current) link.setAttribute('aria-current', 'page');
    link.addEventListener('click', () => this.actions.opened());
    const rename = iconButton(`Rename ${conversation.title}`, 'edit', 'rename');
    rename.addEventListener('click', () => this.startRename(item, link, conversation));
    const remove = iconButton(`Delete ${conversation.title}`, 'trash', 'delete');
    remove.addEventListener('click', () => this.actions.remove(conversation.id));
    item.append(link, rename, remove);
    return item;
  }

  /**
   * The title becomes a text box: Enter (or leaving it) renames, Escape keeps the old title.
   * @param {HTMLLIElement} item
   * @param {HTMLAnchorElement} link
   * @param {Summary} conversation
   */
  startRename(item, link, conversation) {
    this.renaming = true;
    const box = element('input', 'rename-box');
    box.type = 'text';
    box.value = conversation.title;
    box.maxLength = 200;
    box.dir = 'auto';
    box.setAttribute('aria-label', 'Conversation title');
    let done = false;
    /** @param {boolean} save */
    const end = (save) => {
      if (done) return;
      done = true;
      this.renaming = false;
      box.replaceWith(link);
      item.classList.remove('renaming');
      const title = link.querySelector('.title');
      if (save && box.value.trim() !== conversation.title) {
        if (title && box.value.trim()) title.textContent = box.value.trim();
        this.actions.rename(conversation.id, box.value);
      }
      /** @type {HTMLElement | null} */ (item.querySelector('button.rename'))?.focus();
      const pending = this.pending;
      this.pending = null;
      if (pending) this.render(pending.conversations, pending.current, pending.marks);
    };
    box.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        end(true);
      } else if (event.key === 'Escape') {
        event.preventDefault();
        event.stopPropagation();
        end(false);
      }
    });
    box.addEventListener('blur', () => end(true));
    item.classList.add('renaming');
    link.replaceWith(box);
    box.focus();
    box.select();
  }
}
