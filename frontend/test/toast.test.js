// @ts-check
// The toast: shown for its time, held while the reader is on it, replaced by the next one, and
// its action done once.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';

import { TOAST_MS, Toast } from '../src/toast.js';

/** Enough of an element for the toast: events, `hidden`, `textContent` and `contains`. */
class FakeElement extends EventTarget {
  hidden = true;
  textContent = '';
  /** @type {FakeElement[]} */
  inside = [];

  /** @param {unknown} node */
  contains(node) {
    return node === this || this.inside.some((child) => child === node);
  }
}

function toastOnPage() {
  const [root, text, button] = [new FakeElement(), new FakeElement(), new FakeElement()];
  root.inside.push(text, button);
  const toast = new Toast(
    /** @type {HTMLElement} */ (/** @type {unknown} */ (root)),
    /** @type {HTMLElement} */ (/** @type {unknown} */ (text)),
    /** @type {HTMLButtonElement} */ (/** @type {unknown} */ (button)),
  );
  /** @type {string[]} */
  const done = [];
  return { toast, root, text, button, done };
}

/**
 * @param {FakeElement} target
 * @param {string} type
 * @param {FakeElement | null} [relatedTarget]
 */
const fire = (target, type, relatedTarget = null) => target.dispatchEvent(Object.assign(new Event(type), { relatedTarget }));

beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
afterEach(() => mock.timers.reset());

test('a toast shows its message and button, and goes after its time with its action forgotten', () => {
  const { toast, root, text, button, done } = toastOnPage();
  toast.show('Conversation deleted', 'Undo', () => done.push('undo'));
  assert.equal(root.hidden, false);
  assert.equal(text.textContent, 'Conversation deleted');
  assert.equal(button.textContent, 'Undo');
  mock.timers.tick(TOAST_MS - 1);
  assert.equal(root.hidden, false);
  mock.timers.tick(1);
  assert.equal(root.hidden, true);
  assert.equal(toast.shown, false);
  fire(button, 'click');
  assert.deepEqual(done, []);
});

test('its button does the action once, and the toast goes', () => {
  const { toast, root, button, done } = toastOnPage();
  toast.show('Conversation deleted', 'Undo', () => done.push('undo'));
  fire(button, 'click');
  fire(button, 'click');
  assert.deepEqual(done, ['undo']);
  assert.equal(root.hidden, true);
});

test('the next toast takes the place of the one shown, with its own time', () => {
  const { toast, button, root, done } = toastOnPage();
  toast.show('Conversation deleted', 'Undo', () => done.push('first'));
  mock.timers.tick(TOAST_MS - 100);
  toast.show('Conversation deleted', 'Undo', () => done.push('second'));
  mock.timers.tick(200);
  assert.equal(root.hidden, false);
  fire(button, 'click');
  assert.deepEqual(done, ['second']);
});

test('it stays while the pointer or the keyboard is on it, then has its whole time again', () => {
  const { toast, root, button } = toastOnPage();
  toast.show('Conversation deleted', 'Undo', () => {});
  fire(root, 'pointerenter');
  fire(root, 'focusin');
  mock.timers.tick(TOAST_MS * 3);
  assert.equal(root.hidden, false);
  fire(root, 'pointerleave');
  mock.timers.tick(TOAST_MS * 3);
  assert.equal(root.hidden, false, 'the keyboard is still on it');
  fire(root, 'focusout', button); // to its own button: still on it
  mock.timers.tick(TOAST_MS * 3);
  assert.equal(root.hidden, false);
  fire(root, 'focusout', null);
  mock.timers.tick(TOAST_MS - 1);
  assert.equal(root.hidden, false);
  mock.timers.tick(1);
  assert.equal(root.hidden, true);
});

test('once gone, it holds nothing for the next one: a pointer that was on it does not stop its time', () => {
  const { toast, root, button } = toastOnPage();
  toast.show('Conversation deleted', 'Undo', () => {});
  fire(root, 'pointerenter');
  fire(button, 'click'); // hidden under the pointer, which need not be said to leave
  toast.show('Conversation deleted', 'Undo', () => {});
  mock.timers.tick(TOAST_MS);
  assert.equal(root.hidden, true);
});
