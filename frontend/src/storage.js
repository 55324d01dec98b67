// @ts-check
// Conversations kept in the browser's IndexedDB (through idb-keyval), so that they survive new
// tabs and restarts; every tab of the page shares them and hears of each change through a
// BroadcastChannel.
//
// Each conversation is kept whole under its id, and its summary (what the list shows: title,
// times, whether an answer was still arriving) beside it under ['summary', id], written in the
// same transaction. The list reads the summaries alone: reading every conversation whole took
// 100-160 ms with 300 long ones, at every change. Array keys sort after every string, so one
// range reads the summaries and another the conversations' ids; the object store stays as it
// was (no new version of the database, which a tab of the older page still open would block),
// and a conversation without a summary (kept before there were any, or since by an older page
// in another tab) is summarised the first time the list finds it. What an older page changed or
// deleted while no tab of this version was open to hear it is set right once a page loads
// (`reconcile`: every conversation read whole once, off the list's path).
//
// A conversation IndexedDB does not take (its storage full, or IndexedDB refused altogether, as
// some browsers do in a private window) is kept in memory over what IndexedDB holds: it is
// listed and shown as if stored, written again at the next change (a delete making room
// included), and the page says it is not saved until then. One failed write used to switch the
// page to memory for good, and every conversation stored before it vanished from the list, the
// old ones the reader could have deleted to make room included.
import { createStore, get, promisifyRequest } from 'idb-keyval';

import { readConversation, readSummary, recentFirst, summaryOf, withProgress } from './conversation.js';
import { messageOf } from './words.js';

/** @import { Conversation, Summary } from './conversation.js' */
/** @import { UseStore } from 'idb-keyval' */

/**
 * What keeps conversations from being saved: `unavailable`, IndexedDB cannot be used at all
 * (they last until the page closes); `full`, the browser's storage for the page is full;
 * `unsaved`, some other error. `reason` is the browser's own words.
 * @typedef {{kind: 'unavailable' | 'full' | 'unsaved', reason: string}} StorageProblem
 */

const DATABASE = 'relaychat';
const STORE = 'conversations';
const CHANNEL = 'relaychat:conversations';

/** @param {string} id */
const summaryKey = (id) => ['summary', id];
/** Every summary's key. */
const summaryKeys = () => IDBKeyRange.bound(['summary'], ['summary', []]);
/** Every conversation's key (its id): every key below the arrays. */
const conversationKeys = () => IDBKeyRange.upperBound([], true);
/** @param {string} channel */
const progressKey = (channel) => ['progress', channel];
/** Every kept progress's key (`keepProgressNow`). */
const progressKeys = () => IDBKeyRange.bound(['progress'], ['progress', []]);

/**
 * `conversation` with the progress kept apart (`keepProgressNow`) of each answer still running
 * in it, where that has more than the conversation.
 * @param {Conversation} conversation
 * @param {UseStore} database
 * @returns {Promise<Conversation>}
 */
async function withKeptProgress(conversation, database) {
  let merged = conversation;
  for (const turn of conversation.turns) {
    if (turn.role !== 'assistant' || turn.reason !== null) continue;
    const kept = /** @type {Record<string, unknown> | undefined} */ (await get(progressKey(turn.channel), database));
    if (typeof kept?.answer !== 'string' || typeof kept.thinking !== 'string') continue;
    merged = withProgress(merged, turn.channel, { answer: kept.answer, thinking: kept.thinking }) ?? merged;
  }
  return merged;
}

/**
 * Asks for the conversation and its summary to be kept, in the transaction of `objects`: both
 * are written, or neither.
 * @param {IDBObjectStore} objects
 * @param {string} id
 * @param {Conversation} conversation
 */
function putWithSummary(objects, id, conversation) {
  objects.put(conversation, id);
  objects.put(summaryOf(conversation), summaryKey(id));
}

/**
 * The summaries of the stored conversations `ids`, from their whole records; `readwrite` keeps
 * them too, in the same transaction (a change another tab makes meanwhile comes whole before or
 * after it).
 * @param {UseStore} database
 * @param {string[]} ids
 * @param {IDBTransactionMode} mode
 * @returns {Promise<Summary[]>}
 */
function summariesOf(database, ids, mode) {
  return database(
    mode,
    (objects) =>
      // Callbacks, not await: the puts must be asked for while the transaction is active.
      new Promise((resolve, reject) => {
        /** @type {Summary[]} */
        const found = [];
        let left = ids.length;
        for (const id of ids) {
          const reading = objects.get(id);
          reading.onerror = () => reject(reading.error);
          reading.onsuccess = () => {
            try {
              const conversation = readConversation(reading.result);
              if (conversation) {
                found.push(summaryOf(conversation));
                if (mode === 'readwrite') objects.put(summaryOf(conversation), summaryKey(id));
              }
            } catch (error) {
              reject(error); // a put refused at once (storage full): it ends the transaction
              return;
            }
            left -= 1;
            if (!left) resolve(promisifyRequest(objects.transaction).then(() => found));
          };
        }
      }),
  );
}

/**
 * Summarises the stored conversations `ids` and keeps their summaries; when those cannot be
 * written (storage full, say), they are read all the same, and written the next time.
 * @param {UseStore} database
 * @param {string[]} ids
 */
async function summarise(database, ids) {
  if (!ids.length) return [];
  try {
    return await summariesOf(database, ids, 'readwrite');
  } catch {
    return summariesOf(database, ids, 'readonly');
  }
}

/**
 * The summary of every stored conversation. One without a summary is summarised (read whole,
 * once); a summary without its conversation (deleted by an older page) is left out.
 * @param {UseStore} database
 * @returns {Promise<Summary[]>}
 */
async function storedSummaries(database) {
  const [rows, ids] = await database('readonly', (objects) =>
    Promise.all([
      promisifyRequest(objects.getAll(summaryKeys())),
      promisifyRequest(objects.getAllKeys(conversationKeys())),
    ]),
  );
  /** @type {Map<string, Summary>} */
  const summaries = new Map();
  for (const row of rows) {
    const summary = readSummary(row);
    if (summary) summaries.set(summary.id, summary);
  }
  const stored = /** @type {string[]} */ (ids.filter((id) => typeof id === 'string'));
  const listed = stored.flatMap((id) => summaries.get(id) ?? []);
  return [...listed, ...(await summarise(database, stored.filter((id) => !summaries.has(id))))];
}

/**
 * Brings every summary in line with its conversation, once a page: an older page (another tab,
 * with no tab of this version open to hear it) changes conversations without their summaries, and
 * deletes them without theirs. Reads every conversation whole once (off the list's own path);
 * whether any summary changed.
 * @param {UseStore} database
 * @returns {Promise<boolean>}
 */
async function reconcile(database) {
  const [conversations, rows, progressKeysKept] = await database('readonly', (objects) =>
    Promise.all([
      promisifyRequest(objects.getAll(conversationKeys())),
      promisifyRequest(objects.getAll(summaryKeys())),
      promisifyRequest(objects.getAllKeys(progressKeys())),
    ]),
  );
  /** @type {Map<string, string>} */
  const kept = new Map();
  for (const row of rows) {
    const summary = readSummary(row);
    if (summary) kept.set(summary.id, JSON.stringify(summary));
  }
  const stale = [];
  const ids = new Set();
  /** @type {Set<string>} */
  const running = new Set();
  for (const value of conversations) {
    const conversation = readConversation(value);
    if (!conversation) continue;
    ids.add(conversation.id);
    for (const turn of conversation.turns) if (turn.role === 'assistant' && turn.reason === null) running.add(turn.channel);
    if (kept.get(conversation.id) !== JSON.stringify(readSummary(summaryOf(conversation)))) stale.push(conversation.id);
  }
  const orphans = [...kept.keys()].filter((id) => !ids.has(id));
  if (stale.length) await summariesOf(database, stale, 'readwrite');
  if (orphans.length) {
    await database('readwrite', (objects) => {
      // Deleted only if its conversation is still not there (re-read in this transaction).
      for (const id of orphans) {
        const reading = objects.get(id);
        reading.onsuccess = () => {
          if (reading.result === undefined) objects.delete(summaryKey(id));
        };
      }
      return promisifyRequest(objects.transaction);
    });
  }
  // Progress kept apart (`keepProgressNow`) of answers that ended since, or went with their
  // conversation: no longer of use.
  const spent = progressKeysKept.filter((key) => !(Array.isArray(key) && typeof key[1] === 'string' && running.has(key[1])));
  if (spent.length) {
    await database('readwrite', (objects) => {
      for (const key of spent) objects.delete(key);
      return promisifyRequest(objects.transaction);
    });
  }
  return stale.length > 0;
}

export class ConversationStore {
  /**
   * @param {{changed: (id: string, deleted: boolean) => void, trouble: (problem: StorageProblem | null) => void}} listeners
   *   `changed`: another tab changed or deleted (`deleted`) a conversation; `trouble`: what
   *   keeps conversations from being saved, or null once every one is
   * @param {UseStore} [database]  IndexedDB's object store (another in the tests)
   */
  constructor({ changed, trouble }, database = createStore(DATABASE, STORE)) {
    this.trouble = trouble;
    this.database = database;
    /** @type {Map<string, Conversation>} conversations not saved yet, kept over IndexedDB's */
    this.unsaved = new Map();
    /** @type {Set<string>} conversations deleted here that IndexedDB has not deleted yet */
    this.undeleted = new Set();
    /** @type {unknown} why IndexedDB could not be read the last time it was tried, or null */
    this.unreadable = null;
    /** @type {unknown} why the last write failed, or null */
    this.writeError = null;
    /** @type {string} the problem said last, as JSON ('null' for none) */
    this.said = 'null';
    /** @type {Promise<void>} the writes of the conversations not saved, one after the other */
    this.saving = Promise.resolve();
    this.broadcast = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL) : null;
    this.broadcast?.addEventListener('message', async (event) => {
      const { id, deleted, summarised } = /** @type {{id?: unknown, deleted?: unknown, summarised?: unknown}} */ (
        event.data ?? {}
      );
      if (typeof id !== 'string') return;
      this.heardOf(id);
      // An older version of the page, still open in another tab, changed it without its summary.
      if (deleted !== true && summarised !== true) await this.read((database) => summarise(database, [id]), []);
      changed(id, deleted === true);
    });
  }

  /**
   * Another tab changed or deleted `id`, and wrote it: its version is newer than what this tab
   * could not write (kept here, a delete in the other tab was undone by this tab's copy, which
   * its next write stored again), and it may have made room for what waits here.
   * @param {string} id
   */
  heardOf(id) {
    this.unsaved.delete(id);
    this.undeleted.delete(id);
    if (this.unsaved.size || this.undeleted.size) void this.saveAll();
    else this.report();
  }

  /**
   * Reads IndexedDB; `otherwise` when it cannot be read (the conversations not saved are all
   * there is then).
   * @template T
   * @param {(database: UseStore) => Promise<T>} action
   * @param {T} otherwise
   * @returns {Promise<T>}
   */
  async read(action, otherwise) {
    try {
      const result = await action(this.database);
      this.readable(null);
      return result;
    } catch (error) {
      this.readable(error);
      return otherwise;
    }
  }

  /**
   * Notes whether IndexedDB could be read (`error` null) and says what changed.
   * @param {unknown} error
   */
  readable(error) {
    this.unreadable = error;
    this.report();
  }

  /** Says what keeps conversations from being saved, when that changed. */
  report() {
    /** @type {StorageProblem | null} */
    let problem = null;
    if (this.unreadable !== null) problem = { kind: 'unavailable', reason: messageOf(this.unreadable) };
    else if ((this.unsaved.size || this.undeleted.size) && this.writeError !== null) {
      const full = this.writeError instanceof Error && this.writeError.name === 'QuotaExceededError';
      problem = { kind: full ? 'full' : 'unsaved', reason: messageOf(this.writeError) };
    }
    const said = JSON.stringify(problem);
    if (said === this.said) return;
    this.said = said;
    this.trouble(problem);
  }

  /**
   * Every conversation's summary, newest first: what the list shows, read without the
   * conversations themselves.
   */
  async list() {
    const stored = await this.read(storedSummaries, []);
    /** @type {Map<string, Summary>} */
    const all = new Map(stored.map((summary) => [summary.id, summary]));
    for (const [id, conversation] of this.unsaved) all.set(id, summaryOf(conversation));
    for (const id of this.undeleted) all.delete(id);
    return recentFirst([...all.values()]);
  }

  /**
   * @param {string} id
   * @returns {Promise<Conversation | null>}
   */
  async get(id) {
    const unsaved = this.unsaved.get(id);
    if (unsaved) return unsaved;
    if (this.undeleted.has(id)) return null;
    return this.read(async (database) => {
      const conversation = readConversation(await get(id, database));
      return conversation && withKeptProgress(conversation, database);
    }, null);
  }

  /**
   * Summaries brought in line with their conversations (see `reconcile`): whether the list
   * should be drawn again. Never throws.
   */
  async reconcile() {
    try {
      return await reconcile(this.database);
    } catch {
      return false;
    }
  }

  /** @param {Conversation} conversation */
  async put(conversation) {
    this.undeleted.delete(conversation.id); // back (Undo): not to be deleted after all
    this.unsaved.set(conversation.id, conversation);
    await this.saveAll();
    this.tell(conversation.id);
  }

  /**
   * Writes the conversations not saved yet, each taken off the list once written (unless it
   * changed meanwhile: that change is written next). One write after the other: an earlier
   * one finishing last would leave an older version stored.
   */
  saveAll() {
    this.saving = this.saving.then(() => this.writeUnsaved());
    return this.saving;
  }

  /** `saveAll`'s deletes and writes. Stops at the first that fails: the others would too. */
  async writeUnsaved() {
    let wrote = false;
    for (const id of [...this.undeleted]) {
      try {
        await this.write((objects) => {
          objects.delete(id);
          objects.delete(summaryKey(id));
        });
      } catch (error) {
        await this.failed(error);
        return;
      }
      wrote = true;
      this.undeleted.delete(id);
    }
    for (const id of [...this.unsaved.keys()]) {
      const conversation = this.unsaved.get(id);
      if (!conversation) continue; // deleted meanwhile
      try {
        await this.write((objects) => putWithSummary(objects, id, conversation));
      } catch (error) {
        await this.failed(error);
        return;
      }
      wrote = true;
      if (this.unsaved.get(id) === conversation) this.unsaved.delete(id);
    }
    this.writeError = null;
    if (wrote) this.unreadable = null; // it took them, so it is there
    this.report();
  }

  /**
   * Keeps what has arrived of the answer on `channel`, under a key of its own, asked for at once:
   * for a page being left, which runs no code after that (`update` writes in a callback of its
   * read, which would never run; IndexedDB still finishes a write asked for, committed at once).
   * Nothing else is written over (the conversation may have changed in another tab, or gone);
   * `get` takes it into the conversation while that answer is still running there.
   * @param {string} channel
   * @param {{answer: string, thinking: string}} progress
   * @returns {Promise<void>}  settled once written (or not: what is not taken is lost)
   */
  keepProgressNow(channel, progress) {
    return this.write((objects) => {
      objects.put({ answer: progress.answer, thinking: progress.thinking }, progressKey(channel));
      objects.transaction.commit?.();
    }).catch(() => {});
  }

  /**
   * Writes what `action` asks of the object store, in one transaction.
   * @param {(objects: IDBObjectStore) => void} action
   */
  write(action) {
    return this.database('readwrite', (objects) => {
      action(objects);
      return promisifyRequest(objects.transaction);
    });
  }

  /**
   * A write failed: whether IndexedDB can be read tells a full (or otherwise failing) store
   * from one that cannot be used at all.
   * @param {unknown} error
   */
  async failed(error) {
    this.writeError = error;
    await this.read((database) => get('', database), undefined);
  }

  /**
   * Changes the stored conversation in one transaction, so that a change another tab made
   * meanwhile is not lost; `change` returns null to leave it as it is. A conversation that is
   * not stored (deleted meanwhile) stays deleted. One not saved yet is changed here and written.
   * @param {string} id
   * @param {(conversation: Conversation) => Conversation | null} change
   * @param {{quiet?: boolean}} [options]  quiet: other tabs are not told (an answer's progress,
   *   which they follow themselves: telling them rebuilt their list once a second)
   */
  async update(id, change, { quiet = false } = {}) {
    const unsaved = this.unsaved.get(id);
    if (unsaved) {
      const changed = change(unsaved);
      if (changed) this.unsaved.set(id, changed);
      await this.saveAll();
    } else {
      await this.changeStored(id, change);
    }
    if (!quiet) this.tell(id);
  }

  /**
   * `update` of a conversation in IndexedDB. The change it cannot write is kept as not saved;
   * the conversations not saved before are written again once it could.
   * @param {string} id
   * @param {(conversation: Conversation) => Conversation | null} change
   */
  async changeStored(id, change) {
    /** @type {Conversation | null} */
    let changed = null;
    try {
      await this.database(
        'readwrite',
        (objects) =>
          // Callbacks, not await: the put must be asked for while the transaction is active.
          new Promise((resolve, reject) => {
            const reading = objects.get(id);
            reading.onerror = () => reject(reading.error);
            reading.onsuccess = () => {
              try {
                const stored = readConversation(reading.result);
                changed = stored && change(stored);
                if (changed) putWithSummary(objects, id, changed);
                resolve(promisifyRequest(objects.transaction));
              } catch (error) {
                reject(error); // a put refused at once (storage full): it ends the transaction
              }
            };
          }),
      );
    } catch (error) {
      if (changed) {
        this.unsaved.set(id, changed);
        await this.failed(error);
      } else {
        this.readable(error); // not even read
      }
      return;
    }
    this.readable(null);
    if (this.unsaved.size) await this.saveAll();
  }

  /**
   * Deletes a conversation, saved or not; then writes those not saved yet, which may fit now.
   * A delete IndexedDB refuses is kept (the conversation is gone from this tab), said, and tried
   * again with the next write: it was dropped silently, and the conversation came back with the
   * next page.
   * @param {string} id
   */
  async delete(id) {
    this.unsaved.delete(id);
    this.undeleted.add(id);
    await this.saveAll();
    this.tell(id, true);
  }

  /**
   * Tells the other tabs: said, not guessed from a read that finds nothing (a read that failed
   * found nothing too, and the other tab took its conversation for deleted).
   * @param {string} id
   * @param {boolean} [deleted]
   */
  tell(id, deleted = false) {
    this.broadcast?.postMessage({ id, deleted, summarised: true });
  }
}
