// @ts-check
// The page's few icons, drawn inline as SVG strokes in the text colour: no icon font, no image
// requests, nothing for the CSP to allow. Icons are decoration: every control names itself in text.

/** @type {Record<string, string[]>} path data of each icon, on a 24x24 grid */
const PATHS = {
  send: ['M12 19V5', 'M5 12l7-7 7 7'],
  stop: ['M7 7h10v10H7z'],
  plus: ['M12 5v14', 'M5 12h14'],
  menu: ['M4 6h16', 'M4 12h16', 'M4 18h16'],
  copy: ['M9 9h11v11H9z', 'M5 15H4V4h11v1'],
  edit: ['M12 20h9', 'M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z'],
  regenerate: ['M21 12a9 9 0 1 1-2.6-6.4L21 8', 'M21 3v5h-5'],
  trash: ['M3 6h18', 'M8 6V4h8v2', 'M19 6l-1 14H6L5 6'],
  down: ['M12 5v14', 'M19 12l-7 7-7-7'],
  check: ['M20 6L9 17l-5-5'],
  close: ['M6 6l12 12', 'M18 6L6 18'],
};

const SVG = 'http://www.w3.org/2000/svg';

/**
 * @param {keyof typeof PATHS} name
 * @returns {SVGSVGElement}
 */
export function icon(name) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', `icon icon-${name}`);
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  for (const d of PATHS[name]) {
    const path = document.createElementNS(SVG, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

/**
 * Sets a control's content to an icon and its name; `labelClass` lets CSS hide the name on
 * narrow screens while it stays the control's accessible name.
 * @param {HTMLElement} control
 * @param {keyof typeof PATHS} name
 * @param {string} label
 * @param {string} [labelClass]
 */
export function setIconLabel(control, name, label, labelClass = 'label') {
  const text = document.createElement('span');
  text.className = labelClass;
  text.textContent = label;
  control.replaceChildren(icon(name), text);
}

/** @typedef {keyof typeof PATHS} IconName */
