// @ts-check
// The list of conversations (src/sidebar.js), on a fake DOM (test/fake-dom.js): drawn again, it
// keeps the keyboard on the same control, or beside a conversation that went (never back at the
// list's top, which scrolled a long list there); titles keep the direction of their text; marks
// are named in words.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { ConversationList } from '../src/sidebar.js';
import { installDom, make } from './fake-dom.js';

/** @import { Summary } from '../src/conversation.js' */
/** @import { Mark } from '../src/unseen.js' */

beforeEach(() => installDom());

/**
 * A list of `count` conversations, the newest first ("Conversation 0"), drawn on the page.
 * @param {number} count
 */
function listOnPage(count) {
  const list = /** @type {HTMLUListElement} */ (make('ul'));
  const empty = make('p');
  document.body.append(list, empty);
  const actions = { rename() {}, remove() {}, opened() {} };
  const view = new ConversationList(list, empty, actions);
  /** @type {Summary[]} */
  const conversations = Array.from({ length: count }, (_, n) => ({
    id: `c${n}`,
    title: `Conversation ${n}`,
    created: 1_000 - n,
    updated: 1_000 - n,
    unfinished: false,
  }));
  view.render(conversations, 'c0');
  return { view, list, conversations };
}

/**
 * The conversation (its id) and the kind of control the keyboard is on.
 * @returns {[string | undefined, string]}
 */
function focusIsOn() {
  const focused = /** @type {HTMLElement} */ (document.activeElement);
  return [focused.closest('li')?.dataset.id, focused.className];
}

/**
 * @param {HTMLUListElement} list
 * @param {string} selector
 */
const control = (list, selector) => /** @type {HTMLElement} */ (list.querySelector(selector));

test('drawn again, the list keeps the keyboard on the same control of the same conversation', () => {
  const { view, list, conversations } = listOnPage(5);
  control(list, 'li[data-id="c3"] button.rename').focus();
  const [moved] = conversations.splice(3, 1); // it changed: the newest now
  view.render([{ ...moved, updated: 2_000 }, ...conversations], 'c0');
  assert.deepEqual(focusIsOn(), ['c3', 'icon-button rename']);
});

test('a conversation deleted far down a long list leaves the keyboard beside it, not at the top', () => {
  const { view, list, conversations } = listOnPage(40);
  control(list, 'li[data-id="c30"] button.delete').focus();
  view.render(
    conversations.filter((c) => c.id !== 'c30'),
    'c0',
  );
  assert.deepEqual(focusIsOn(), ['c31', 'open'], 'on the conversation now in its place');

  control(list, 'li[data-id="c39"] button.delete').focus(); // the last one
  view.render(
    conversations.filter((c) => !['c30', 'c39'].includes(c.id)),
    'c0',
  );
  assert.deepEqual(focusIsOn(), ['c38', 'open'], 'on the one before it');
});

test('titles take their direction from their own text', () => {
  const { view, list } = listOnPage(0);
  view.render([{ id: 'a', title: 'مرحبا، كيف حالك اليوم؟', created: 1, updated: 1, unfinished: false }], '');
  assert.equal(list.querySelector('.title')?.getAttribute('dir'), 'auto');
  control(list, 'button.rename').click();
  assert.equal(list.querySelector('input')?.getAttribute('dir'), 'auto', 'and while renamed');
});

test('a prompt not accepted out of sight is marked so, not as a failed answer', () => {
  const { view, list, conversations } = listOnPage(2);
  view.render(conversations, 'c0', new Map(/** @type {[string, Mark][]} */ ([['c1', 'refused']])));
  const mark = control(list, 'li[data-id="c1"] .mark');
  assert.equal(mark.getAttribute('aria-label'), 'prompt not accepted');
  assert.ok(mark.classList.contains('refused'));
});
