// @ts-check
// The status line (src/status.js), on a fake DOM (test/fake-dom.js): it is no live region (it
// sits in the page, inert behind the conversations drawer, and was unhidden with its text in
// it); each part's news is said by the announcer, once, without the parts shown with it; its
// Retry keeps the keyboard when Retry fails again.
import assert from 'node:assert/strict';
import { beforeEach, test } from 'node:test';

import { StatusLine } from '../src/status.js';
import { Announcer } from '../src/view.js';
import { installDom, make } from './fake-dom.js';

beforeEach(() => installDom());

function statusOnPage() {
  const line = make('div');
  line.hidden = true;
  const region = make('div');
  document.body.append(line, region);
  const said = () => [...region.children].map((p) => p.textContent);
  return { line, region, said, status: new StatusLine(line, new Announcer(region)) };
}

test('the news of each part is said by the announcer once, and the line is no live region', () => {
  const { line, said, status } = statusOnPage();
  status.show('connection', 'Connection lost. Reconnecting.');
  assert.equal(line.hidden, false);
  assert.equal(line.textContent, 'Connection lost. Reconnecting.');
  assert.equal(line.getAttribute('role'), null);
  assert.equal(line.getAttribute('aria-live'), null);
  assert.deepEqual(said(), ['Connection lost. Reconnecting.']);

  status.show('connection', 'Connection lost. Reconnecting.'); // every failed reconnect repeats it
  status.show('storage', 'The latest changes could not be saved.');
  assert.equal(line.textContent, 'Connection lost. Reconnecting. The latest changes could not be saved.');
  assert.deepEqual(said(), ['Connection lost. Reconnecting.', 'The latest changes could not be saved.'], 'no part twice');

  status.show('connection', '');
  assert.equal(line.textContent, 'The latest changes could not be saved.');
  assert.equal(said().length, 2, 'the part left is not news');
  status.show('storage', '');
  assert.equal(line.hidden, true);
});

test('Retry that fails again keeps the keyboard', () => {
  const { line, status } = statusOnPage();
  let retries = 0;
  const retry = () => {
    retries += 1;
    // As LiveSession.start does: it connects again, and fails again.
    status.show('connection', 'Connecting…', retry);
    status.show('connection', 'Session failed: cannot start a session (the server took too long).', retry);
  };
  status.show('connection', 'Session failed: cannot start a session (the server took too long).', retry);
  const button = /** @type {HTMLButtonElement} */ (line.querySelector('button'));
  assert.equal(button.textContent, 'Retry');
  button.focus();
  button.dispatchEvent(new Event('click'));
  assert.equal(retries, 1);
  assert.equal(document.activeElement, button, 'the keyboard stays on Retry');
  assert.equal(line.querySelectorAll('button').length, 1);
  status.show('connection', '');
  assert.equal(line.querySelectorAll('button').length, 0, 'no Retry once there is nothing to retry');
});
