// @ts-check
// Copying text for the reader: the asynchronous Clipboard API where the page may use it (a
// secure context: https, or localhost), else the older copy command through a hidden text box.

/**
 * @param {string} text
 * @returns {Promise<void>} rejects when the browser refused both ways
 */
export async function copyText(text) {
  if (navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      return;
    } catch {
      // refused (no permission, or the page is not focused): try the older way
    }
  }
  const box = document.createElement('textarea');
  box.value = text;
  box.setAttribute('readonly', '');
  box.className = 'offscreen';
  const focused = document.activeElement;
  document.body.append(box);
  box.select();
  const copied = document.execCommand('copy');
  box.remove();
  if (focused instanceof HTMLElement) focused.focus();
  if (!copied) throw new Error('the browser did not allow copying');
}
