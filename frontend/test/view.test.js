// @ts-check
// The conversation on screen (src/view.js), on a fake DOM (test/fake-dom.js): the newest text
// stays in view unless the reader scrolled away from it (a message box that grows is not the
// reader scrolling); one prompt is edited at a time, and text changed in an edit is not thrown
// away (an edit left unsent opens again with it, and says when it closes unsent), nor sent by an
// Enter meant for what opened it; an answer with nothing in it offers no Copy; prompts keep the
// direction of their text.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { Announcer, ConversationView, SECOND_PRESS_MS } from '../src/view.js';
import { FakePane, installDom, make, press, resizeObservers } from './fake-dom.js';

/** @import { UserMessage } from '../src/view.js' */

beforeEach(() => installDom());

/**
 * A conversation pane 500 px tall holding 2,000 px of messages, scrolled to their end, with its
 * Jump to latest button and its announcer.
 */
function conversationOnPage() {
  const scroller = new FakePane(500, 2_000);
  const column = make('div');
  const jump = /** @type {HTMLButtonElement} */ (make('button'));
  const region = make('div');
  const pane = /** @type {HTMLElement} */ (/** @type {unknown} */ (scroller));
  pane.append(column);
  document.body.append(pane, jump, region);
  const view = new ConversationView({ scroller: pane, column, jump, announcer: new Announcer(region) });
  view.toLatest();
  return { view, scroller, jump, region };
}

/**
 * The conversation's message box grows by `by` px (a refused prompt put back, lines pasted):
 * the pane above it is that much shorter. Nothing scrolls.
 * @param {FakePane} scroller
 * @param {number} by
 */
function boxGrows(scroller, by) {
  scroller.clientHeight -= by;
}

test('a refused prompt put back in the message box leaves the notice of its answer in view', () => {
  const { view, scroller, jump } = conversationOnPage();
  assert.equal(scroller.belowView, 0);
  boxGrows(scroller, 150);
  // The answer ends with "The prompt was not accepted: … Edit prompt", 64 px of it.
  view.keepInView(() => {
    scroller.scrollHeight += 64;
  });
  assert.equal(scroller.belowView, 0, 'the notice and its Edit prompt are in view');
  assert.equal(jump.hidden, true, 'no Jump to latest: nothing is out of sight');
});

test('lines pasted while an answer streams do not stop the page following the answer', () => {
  const { view, scroller, jump } = conversationOnPage();
  view.keepInView(() => {
    scroller.scrollHeight += 24;
  });
  boxGrows(scroller, 150); // 8 lines pasted at once
  for (let render = 0; render < 20; render += 1) {
    view.keepInView(() => {
      scroller.scrollHeight += 24;
    });
  }
  assert.equal(scroller.belowView, 0, 'the answer is followed to its end');
  assert.equal(jump.hidden, true);
});

test('a pane that gets shorter keeps its end in view at once, when it was there', () => {
  const { scroller, jump } = conversationOnPage();
  boxGrows(scroller, 150);
  resizeObservers.resized(scroller);
  assert.equal(scroller.belowView, 0);
  assert.equal(jump.hidden, true);
});

test('only the reader scrolling up stops the following, and back at the end it starts again', () => {
  const { view, scroller, jump } = conversationOnPage();
  scroller.scrollBy(-40); // one ArrowUp: a wish to read, however near the end
  view.keepInView(() => {
    scroller.scrollHeight += 24;
  });
  assert.equal(scroller.belowView, 64, 'a step up is not undone by the next render');
  scroller.scrollBy(64);
  assert.equal(jump.hidden, true, 'back at the end: followed again');

  scroller.scrollBy(-300);
  assert.equal(jump.hidden, false, 'Jump to latest is offered');
  view.keepInView(() => {
    scroller.scrollHeight += 100;
  });
  assert.equal(scroller.belowView, 400, 'the reader is left where they are');
  boxGrows(scroller, 150);
  resizeObservers.resized(scroller);
  assert.equal(scroller.belowView, 550, 'nor moved when the box grows');

  scroller.scrollBy(550);
  assert.equal(jump.hidden, true);
  view.keepInView(() => {
    scroller.scrollHeight += 100;
  });
  assert.equal(scroller.belowView, 0, 'followed again');

  scroller.scrollBy(-300);
  jump.click(); // Jump to latest
  assert.equal(scroller.belowView, 0);
  view.keepInView(() => {
    scroller.scrollHeight += 100;
  });
  assert.equal(scroller.belowView, 0, 'and after Jump to latest');
});

/** Two prompts on screen; `sent` gets what their edits send. */
function twoPrompts() {
  const { view, region } = conversationOnPage();
  /** @type {string[]} */
  const sent = [];
  const actions = { copy() {}, edit() {} };
  const prompts = ['The first prompt', 'The second prompt'].map((text) => view.addUser(text, actions));
  /** @param {UserMessage} message */
  const edit = (message) =>
    message.startEdit((text) => {
      sent.push(text);
    });
  /** @param {UserMessage} message */
  const editBox = (message) => /** @type {HTMLTextAreaElement | null} */ (message.root.querySelector('textarea'));
  return { view, region, prompts, sent, edit, editBox };
}

test('one prompt is edited at a time: opening another edit closes one left as it was', () => {
  const { view, prompts, edit, editBox } = twoPrompts();
  const [first, second] = prompts;
  edit(first);
  assert.ok(editBox(first));
  edit(second);
  assert.equal(editBox(first), null, 'the first edit closed');
  assert.equal(first.bubble.hidden, false, 'its prompt shown again');
  assert.ok(editBox(second));
  assert.equal(document.activeElement, editBox(second));
  assert.equal(view.column.querySelectorAll('form').length, 1);
  assert.equal(view.editing(), second);
});

test('an edit whose text was changed stays open: another is not opened over it', () => {
  const { view, region, prompts, sent, edit, editBox } = twoPrompts();
  const [first, second] = prompts;
  edit(first);
  const box = /** @type {HTMLTextAreaElement} */ (editBox(first));
  box.value = 'The first prompt, better';
  document.body.focus();
  edit(second);
  assert.equal(editBox(second), null, 'the second is not opened');
  assert.equal(editBox(first), box);
  assert.equal(box.value, 'The first prompt, better', 'nothing lost');
  assert.equal(document.activeElement, box, 'the keyboard is taken to it');
  assert.match(region.textContent ?? '', /save or cancel that edit first/);

  // Cancelled (Esc), the other can be edited; saved, it sends what was typed.
  press(box, 'Escape');
  assert.equal(view.editing(), null);
  edit(second);
  assert.equal(view.editing(), second);
  /** @type {HTMLFormElement} */ (second.form).requestSubmit();
  assert.deepEqual(sent, ['The second prompt']);
});

test('an edit opened again with the text the reader left in it keeps that text as changed', () => {
  const { view, prompts, sent, editBox } = twoPrompts();
  const [first, second] = prompts;
  first.startEdit((text) => {
    sent.push(text);
  }, 'The first prompt,\nbetter');
  const box = /** @type {HTMLTextAreaElement} */ (editBox(first));
  assert.equal(box.value, 'The first prompt,\nbetter');
  assert.equal(box.rows, 3);
  assert.equal(document.activeElement, box, 'the keyboard is in it');
  assert.equal(first.changedText(), 'The first prompt,\nbetter');
  // Changed: another prompt's Edit does not close it ...
  second.startEdit(() => {});
  assert.equal(view.editing(), first);
  // ... and it sends what the reader wrote.
  /** @type {HTMLFormElement} */ (first.form).requestSubmit();
  assert.deepEqual(sent, ['The first prompt,\nbetter']);
});

test('an edit opened again while the reader is elsewhere leaves the keyboard where it is', () => {
  const { view, prompts, editBox } = twoPrompts();
  const [first] = prompts;
  const link = make('a');
  document.body.append(link);
  link.focus();
  first.startEdit(() => {}, 'The first prompt, better', { focus: false });
  assert.equal(view.editing(), first);
  assert.equal(/** @type {HTMLTextAreaElement} */ (editBox(first)).value, 'The first prompt, better');
  assert.equal(document.activeElement, link);
});

test('Enter held down, or pressed again right behind what opened an edit, is not Save and send', (t) => {
  let now = 1_000;
  t.mock.method(performance, 'now', () => now);
  const { prompts, sent, editBox } = twoPrompts();
  const [first, second] = prompts;
  first.startEdit((text) => {
    sent.push(text);
  }, 'The first prompt, better');
  const box = /** @type {HTMLTextAreaElement} */ (editBox(first));
  // The second Enter of a double press on the link (or Back, Undo) that opened it again ...
  now += SECOND_PRESS_MS - 1;
  assert.equal(press(box, 'Enter'), true, 'no new line either');
  // ... or the auto-repeat of one held down.
  now += SECOND_PRESS_MS;
  press(box, 'Enter', { repeat: true });
  assert.equal(sent.length, 0, 'the unfinished edit is not sent');
  press(box, 'Enter');
  assert.deepEqual(sent, ['The first prompt, better'], 'a press of its own sends it');

  // Typed in, Enter is the reader's at once.
  first.endEdit();
  second.startEdit((text) => {
    sent.push(text);
  });
  const other = /** @type {HTMLTextAreaElement} */ (editBox(second));
  other.value = 'The second prompt, better';
  other.dispatchEvent(new Event('input'));
  press(other, 'Enter');
  assert.deepEqual(sent, ['The first prompt, better', 'The second prompt, better']);
});

test('an edit refused with a reason is sent once it may be, the reason gone', () => {
  const { prompts, editBox } = twoPrompts();
  const [first] = prompts;
  let refusal = 'An answer is still coming';
  /** @type {string[]} */
  const tried = [];
  first.startEdit((text) => {
    tried.push(text);
    return refusal;
  });
  const box = /** @type {HTMLTextAreaElement} */ (editBox(first));
  const form = /** @type {HTMLFormElement} */ (first.form);
  form.requestSubmit();
  assert.equal(box.validationMessage, 'An answer is still coming');
  // A browser's own check would stop a form whose box keeps a reason: this one is not checked.
  assert.equal(form.noValidate, true);
  refusal = '';
  form.requestSubmit();
  assert.deepEqual(tried, ['The first prompt', 'The first prompt']);
  assert.equal(box.validationMessage, '');
});

test('an edit closed unsent says so (Cancel, Esc, another prompt opened); one sent does not', () => {
  const { view } = conversationOnPage();
  /** @type {string[]} */
  const closed = [];
  const prompts = ['first', 'second'].map((text) =>
    view.addUser(text, { copy() {}, edit() {}, editClosed: () => closed.push(text) }),
  );
  const [first, second] = prompts;
  assert.equal(first.changedText(), null, 'no edit open');
  first.startEdit(() => {});
  assert.equal(first.changedText(), null, 'open, unchanged');
  /** @type {HTMLButtonElement} */ (first.root.querySelector('.edit-actions button')).click(); // Cancel
  assert.deepEqual(closed, ['first']);
  first.startEdit(() => {});
  press(/** @type {HTMLTextAreaElement} */ (first.box), 'Escape');
  assert.deepEqual(closed, ['first', 'first']);
  first.startEdit(() => {});
  second.startEdit(() => {}); // the first, unchanged, closes for it
  assert.deepEqual(closed, ['first', 'first', 'first']);
  /** @type {HTMLFormElement} */ (second.form).requestSubmit();
  assert.deepEqual(closed, ['first', 'first', 'first'], 'sent: not closed unsent');
});

test('an answer that ended with nothing in it offers no Copy, which would empty the clipboard', () => {
  const { view } = conversationOnPage();
  /** @type {string[]} */
  const copied = [];
  const actions = { copy: (/** @type {string} */ text) => copied.push(text), copyCode() {}, regenerate() {} };
  for (const [reason, message] of [
    ['cancelled', undefined], // stopped before its first word
    ['rejected', 'text: the prompt is too long'],
    ['error', 'the prompt could not be sent'],
  ]) {
    const answer = view.addAssistant(actions);
    answer.finish(/** @type {string} */ (reason), message);
    const labels = [...answer.root.querySelectorAll('button')].map((button) => button.textContent);
    assert.deepEqual(labels, [], `${reason}: no Copy`);
  }
});

test('prompts, their edits and thinking take their direction from their own text', () => {
  const { view } = conversationOnPage();
  const prompt = view.addUser('מה שלומך?', { copy() {}, edit() {} });
  assert.equal(prompt.root.querySelector('p.text')?.getAttribute('dir'), 'auto');
  prompt.startEdit(() => {});
  assert.equal(prompt.root.querySelector('textarea')?.getAttribute('dir'), 'auto');

  const answer = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  answer.show('', 'أفكر في السؤال');
  assert.equal(answer.thinkingText?.getAttribute('dir'), 'auto');
  answer.finish('cancelled');
});

/**
 * Sets the pane's scrollTop with no scroll event: in a browser the event comes a frame later, one
 * for every change in that frame.
 * @param {FakePane} pane
 * @param {() => void} change
 */
function unannounced(pane, change) {
  const dispatch = pane.dispatchEvent.bind(pane);
  pane.dispatchEvent = () => true;
  try {
    change();
  } finally {
    pane.dispatchEvent = dispatch;
  }
}

test("the reader's scroll up counts when it comes in one scroll event with the page's own", () => {
  const { view, scroller, jump } = conversationOnPage();
  unannounced(scroller, () =>
    view.keepInView(() => {
      scroller.scrollHeight += 250; // a render keeps the end in view ...
    }),
  );
  unannounced(scroller, () => scroller.scrollBy(-200)); // ... and the reader goes up meanwhile
  scroller.dispatchEvent(new Event('scroll'));
  assert.equal(view.following, false);
  assert.equal(jump.hidden, false);
  view.keepInView(() => {
    scroller.scrollHeight += 24;
  });
  assert.equal(scroller.belowView, 224, 'left where they went');
});

test("the reader's scroll up counts before its event comes, when a render comes first", () => {
  const { view, scroller } = conversationOnPage();
  unannounced(scroller, () => scroller.scrollBy(-200));
  view.keepInView(() => {
    scroller.scrollHeight += 24;
  });
  assert.equal(scroller.belowView, 224);
});

test('what the reader opens in the conversation (Thinking, an edit) is not scrolled past', () => {
  const { view, scroller } = conversationOnPage();
  const before = scroller.scrollTop;
  scroller.scrollHeight += 600; // a closed Thinking opened by the reader
  resizeObservers.resized(view.column);
  assert.equal(scroller.scrollTop, before);
});

test('how an answer ended is said by the announcer, not by a live region inserted with its text', () => {
  const { view, region } = conversationOnPage();
  const answer = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  answer.finish('error', 'the server is stopping; please send the prompt again');
  const notice = answer.root.querySelector('.notice');
  assert.equal(notice?.textContent, 'The answer failed: the server is stopping; please send the prompt again.');
  assert.equal(notice?.getAttribute('role'), null);
  assert.ok(
    [...region.children].some((p) => p.textContent === notice?.textContent),
    'the announcer (outside the page, which the drawer makes inert) says it',
  );
  const stopped = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  stopped.finish('cancelled');
  assert.equal([...region.children].at(-1)?.textContent, 'Stopped.');
  const restored = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  restored.finish('error', 'old news', { restored: true });
  assert.equal([...region.children].at(-1)?.textContent, 'Stopped.', 'an ending shown from storage is not news');
});

test('an answer says once that it started, and that it is complete, never token by token', () => {
  // (No answer text is rendered: the fake DOM has no DOMPurify. Its blocks are said as before.)
  const { view, region } = conversationOnPage();
  const said = () => [...region.children].map((p) => p.textContent);
  const thinking = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  thinking.show('', '');
  assert.deepEqual(said(), [], 'nothing yet');
  thinking.show('', 'Let me');
  thinking.show('', 'Let me think');
  assert.deepEqual(said(), ['relaychat is thinking…'], 'once, as its first words (its thinking) arrive');
  thinking.finish('complete');
  assert.deepEqual(said(), ['relaychat is thinking…', 'Answer complete.']);

  const answer = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  answer.show('Para', '');
  answer.show('Para one', '');
  answer.unschedule();
  assert.deepEqual(said().slice(2), ['relaychat is answering…']);

  const again = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  again.showArrived('Half of it', ''); // shown again while it arrives: it started before
  again.show('Half of it, and more', '');
  again.unschedule();
  const restored = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  restored.finish('complete', undefined, { restored: true });
  assert.deepEqual(said().slice(2), ['relaychat is answering…'], 'neither shown again nor from storage is news');
});

test('an answer that completed before Stop reached the server says so, on it and to the announcer', () => {
  // Probe: Stop pressed as the answer finished ended "complete" without a word of why it was not
  // stopped.
  const { view, region } = conversationOnPage();
  const said = () => [...region.children].map((p) => p.textContent);
  const late = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  late.finish('complete', undefined, { stopPressed: true });
  const notice = late.root.querySelector('.notice');
  assert.equal(notice?.textContent, 'The answer had already finished before Stop took effect.');
  assert.equal(said().at(-1), 'The answer had already finished before Stop took effect.');

  const stopped = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  stopped.finish('cancelled', undefined, { stopPressed: true });
  assert.equal(stopped.root.querySelector('.notice')?.textContent, 'Stopped.');

  const complete = view.addAssistant({ copy() {}, copyCode() {}, regenerate() {} });
  complete.finish('complete');
  assert.equal(complete.root.querySelector('.notice'), null, 'no Stop, no notice');
  assert.equal(said().at(-1), 'Answer complete.');
});

test('each Copy is named for what it copies, distinct from the others', () => {
  // Probe: a screen reader's list of buttons held a row of identical "Copy" and "Copy code".
  const { view } = conversationOnPage();
  const actions = { copy() {}, copyCode() {}, regenerate() {} };
  const names = (/** @type {HTMLElement} */ root) =>
    [...root.querySelectorAll('button')].map((button) => button.getAttribute('aria-label') ?? button.textContent);
  const first = view.addUser('hello', { copy() {}, edit() {} });
  const second = view.addUser('explain', { copy() {}, edit() {} });
  assert.deepEqual(names(first.root), ['Copy your message 1', 'Edit']);
  assert.deepEqual(names(second.root), ['Copy your message 2', 'Edit']);
  assert.equal(first.root.querySelector('button .label')?.textContent, 'Copy', 'the name starts with what is shown');

  view.addAssistant(actions).finish('cancelled'); // nothing in it: no Copy, but it counts
  const answer = view.addAssistant(actions);
  // A code block still arriving is drawn plain, without the sanitiser the fake DOM lacks.
  answer.show('```python\nprint(1)\n', '');
  answer.unschedule();
  answer.render();
  assert.deepEqual(names(answer.root), ['Copy code block 1 of answer 2']);
  // A code block before it (drawn by the sanitiser in a browser) is block 1, and it is block 2.
  const earlier = make('button');
  earlier.className = 'copy-code';
  answer.answer.prepend(earlier);
  answer.show('```python\nprint(1)\nprint(2)\n', '');
  answer.unschedule();
  answer.render();
  assert.deepEqual(names(answer.root), ['Copy code block 1 of answer 2', 'Copy code block 2 of answer 2']);

  const finished = view.addAssistant(actions);
  finished.answerText = 'The answer.';
  finished.render = () => {}; // no sanitiser in the fake DOM: the answer is not drawn
  finished.finish('complete');
  assert.deepEqual(names(finished.bar), ['Copy answer 3']);
});
