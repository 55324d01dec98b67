// @ts-check
// A fake of the one IndexedDB object store the page uses (through idb-keyval's UseStore), for
// the storage tests and for scripts/measure-list.mjs: requests whose outcome comes later, as
// IndexedDB's does, transactions that keep their writes at the end (or abort, storage full),
// keys that are strings or arrays of them, ranges of keys, and values copied in and out
// (structured clone, as IndexedDB does). Not a test file itself.
import assert from 'node:assert/strict';

export const quotaExceeded = () => new DOMException('The quota has been exceeded.', 'QuotaExceededError');

/**
 * IndexedDB's order of keys, for the kinds the page uses: numbers, then strings (by UTF-16 code
 * units, as JavaScript's `<`), then arrays (item by item, a shorter prefix first).
 * @param {unknown} a
 * @param {unknown} b
 * @returns {number}
 */
export function compareKeys(a, b) {
  const rank = (/** @type {unknown} */ key) => (Array.isArray(key) ? 3 : typeof key === 'string' ? 2 : 1);
  if (rank(a) !== rank(b)) return rank(a) - rank(b);
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.min(a.length, b.length); i += 1) {
      const order = compareKeys(a[i], b[i]);
      if (order) return order;
    }
    return a.length - b.length;
  }
  const [x, y] = /** @type {[string, string]} */ ([a, b]);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Enough of IDBKeyRange: `bound`, `upperBound`, `lowerBound` and `includes`. */
class FakeKeyRange {
  /**
   * @param {unknown} lower
   * @param {unknown} upper
   * @param {boolean} lowerOpen
   * @param {boolean} upperOpen
   */
  constructor(lower, upper, lowerOpen, upperOpen) {
    Object.assign(this, { lower, upper, lowerOpen, upperOpen });
  }

  /** @param {unknown} key */
  includes(key) {
    const { lower, upper, lowerOpen, upperOpen } = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (this));
    const fromLower = lower === undefined ? 1 : compareKeys(key, lower);
    const toUpper = upper === undefined ? -1 : compareKeys(key, upper);
    return (lowerOpen ? fromLower > 0 : fromLower >= 0) && (upperOpen ? toUpper < 0 : toUpper <= 0);
  }

  /** @param {unknown} lower @param {unknown} upper */
  static bound(lower, upper, lowerOpen = false, upperOpen = false) {
    return new FakeKeyRange(lower, upper, lowerOpen, upperOpen);
  }

  /** @param {unknown} upper */
  static upperBound(upper, open = false) {
    return new FakeKeyRange(undefined, upper, false, open);
  }

  /** @param {unknown} lower */
  static lowerBound(lower, open = false) {
    return new FakeKeyRange(lower, undefined, open, false);
  }
}
if (typeof globalThis.IDBKeyRange === 'undefined') {
  globalThis.IDBKeyRange = /** @type {typeof IDBKeyRange} */ (/** @type {unknown} */ (FakeKeyRange));
}

/** A request of the fake: its outcome comes later, as IndexedDB's does. */
class FakeRequest {
  /** @type {unknown} */
  result = undefined;
  /** @type {unknown} */
  error = null;
  /** @type {(() => void) | null} */
  onsuccess = null;
  /** @type {(() => void) | null} */
  onerror = null;
}

/**
 * One transaction of the fake: done once no request is left; its writes are kept then, or, with
 * the storage full, it aborts with QuotaExceededError (as browsers do, at the commit).
 */
class FakeTransaction extends FakeRequest {
  /** @type {(() => void) | null} */
  oncomplete = null;
  /** @type {(() => void) | null} */
  onabort = null;
  active = 0;
  done = false;
  /** @type {Map<string, {key: unknown, value: unknown}>} what it writes: a value, or undefined to delete */
  writes = new Map();

  /** @param {FakeDatabase} database */
  constructor(database) {
    super();
    this.database = database;
    this.settle();
  }

  /**
   * @param {() => unknown} outcome
   * @returns {FakeRequest}
   */
  request(outcome) {
    const request = new FakeRequest();
    this.active += 1;
    setTimeout(() => {
      request.result = outcome();
      request.onsuccess?.();
      this.active -= 1;
      this.settle();
    });
    return request;
  }

  settle() {
    setTimeout(() => {
      if (this.active || this.done) return;
      this.done = true;
      const grows = [...this.writes.values()].some(({ value }) => value !== undefined);
      if (grows && this.database.full === 'commit') {
        this.error = quotaExceeded();
        this.onabort?.();
        return;
      }
      for (const [name, { key, value }] of this.writes) {
        if (value === undefined) this.database.rows.delete(name);
        else this.database.rows.set(name, { key, value });
      }
      this.oncomplete?.();
    });
  }
}

/** Enough of idb-keyval's store for storage.js: get, getAll, getAllKeys, put and delete. */
export class FakeDatabase {
  /** @type {Map<string, {key: unknown, value: unknown}>} by the key's JSON */
  rows = new Map();
  /** @type {false | 'put' | 'commit'} storage full: a put throws at once, or its commit fails */
  full = false;
  /** whether it cannot be opened at all (a private window) */
  closed = false;
  /** whether every write fails (reads go on) */
  failing = false;
  /** how many whole conversations (values with `turns`) were read */
  wholeReads = 0;

  /** The ids of the conversations stored, in the order they were first written. */
  ids() {
    return [...this.rows.values()].flatMap(({ key }) => (typeof key === 'string' ? [key] : []));
  }

  /** The conversations stored (not their summaries). */
  conversations() {
    return [...this.rows.values()].flatMap(({ key, value }) => (typeof key === 'string' ? [value] : []));
  }

  /**
   * Stores a value as an older version of the page did (idb-keyval's `set`, no summary).
   * @param {string} key
   * @param {unknown} value
   */
  putDirectly(key, value) {
    this.rows.set(JSON.stringify(key), { key, value: structuredClone(value) });
  }

  /** @param {unknown} value */
  copyOut(value) {
    if (value && typeof value === 'object' && 'turns' in value) this.wholeReads += 1;
    return structuredClone(value);
  }

  /** @param {{includes: (key: unknown) => boolean} | undefined} range */
  inRange(range) {
    return [...this.rows.values()]
      .filter(({ key }) => !range || range.includes(key))
      .sort((a, b) => compareKeys(a.key, b.key));
  }

  /** @type {import('idb-keyval').UseStore} */
  use = async (mode, callback) => {
    if (this.closed) throw new DOMException('A mutation operation was attempted on a database that did not allow mutations.', 'InvalidStateError');
    if (this.failing && mode === 'readwrite') throw new DOMException('The disk is on fire.', 'UnknownError');
    const transaction = new FakeTransaction(this);
    const objects = {
      transaction,
      get: (/** @type {unknown} */ key) => transaction.request(() => this.copyOut(this.rows.get(JSON.stringify(key))?.value)),
      getAll: (/** @type {FakeKeyRange | undefined} */ range) =>
        transaction.request(() => this.inRange(range).map(({ value }) => this.copyOut(value))),
      getAllKeys: (/** @type {FakeKeyRange | undefined} */ range) =>
        transaction.request(() => this.inRange(range).map(({ key }) => structuredClone(key))),
      put: (/** @type {unknown} */ value, /** @type {unknown} */ key) => {
        assert.equal(mode, 'readwrite');
        if (this.full === 'put') throw quotaExceeded();
        transaction.writes.set(JSON.stringify(key), { key: structuredClone(key), value: structuredClone(value) });
        return transaction.request(() => key);
      },
      delete: (/** @type {unknown} */ key) => {
        assert.equal(mode, 'readwrite');
        transaction.writes.set(JSON.stringify(key), { key, value: undefined });
        return transaction.request(() => undefined);
      },
    };
    return callback(/** @type {IDBObjectStore} */ (/** @type {unknown} */ (objects)));
  };
}
