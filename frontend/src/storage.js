// @ts-check
// Conversations kept in the browser's IndexedDB (through idb-keyval), so that they survive new
// tabs and restarts; every tab of the page shares them and hears of each change through a
// BroadcastChannel. Where IndexedDB cannot be used (a browser that refuses it in a private
// window), they are kept in memory for this page only, and the page says so.
import { createStore, del, get, promisifyRequest, set, values } from 'idb-keyval';

import { readConversation, recentFirst } from './conversation.js';

/** @import { Conversation } from './conversation.js' */

const DATABASE = 'relaychat';
const STORE = 'conversations';
const CHANNEL = 'relaychat:conversations';

export class ConversationStore {
  /**
   * @param {{changed: (id: string) => void, unavailable: (reason: string) => void}} listeners
   *   `changed`: another tab changed or deleted a conversation; `unavailable`: IndexedDB failed,
   *   conversations are kept in memory from now on
   */
  constructor({ changed, unavailable }) {
    this.unavailable = unavailable;
    /** @type {Map<string, Conversation> | null} the fallback, once IndexedDB failed */
    this.memory = null;
    try {
      this.store = createStore(DATABASE, STORE);
    } catch (error) {
      this.store = null;
      this.fallBack(error);
    }
    this.broadcast = typeof BroadcastChannel === 'function' ? new BroadcastChannel(CHANNEL) : null;
    this.broadcast?.addEventListener('message', (event) => {
      const id = /** @type {{id?: unknown}} */ (event.data)?.id;
      if (typeof id === 'string') changed(id);
    });
  }

  /** @param {unknown} error */
  fallBack(error) {
    if (this.memory) return;
    this.memory = new Map();
    this.unavailable(error instanceof Error ? error.message : String(error));
  }

  /**
   * Runs `action` on IndexedDB, or `fallback` on the memory copy once IndexedDB failed.
   * @template T
   * @param {(store: NonNullable<ConversationStore['store']>) => Promise<T>} action
   * @param {(memory: Map<string, Conversation>) => T} fallback
   * @returns {Promise<T>}
   */
  async use(action, fallback) {
    if (this.store && !this.memory) {
      try {
        return await action(this.store);
      } catch (error) {
        this.fallBack(error);
      }
    }
    return fallback(/** @type {Map<string, Conversation>} */ (this.memory));
  }

  /** Every conversation, newest first. */
  async list() {
    const all = await this.use(
      async (store) => (await values(store)).map(readConversation),
      (memory) => [...memory.values()],
    );
    return recentFirst(all.filter((c) => c !== null));
  }

  /**
   * @param {string} id
   * @returns {Promise<Conversation | null>}
   */
  async get(id) {
    return this.use(
      async (store) => readConversation(await get(id, store)),
      (memory) => memory.get(id) ?? null,
    );
  }

  /** @param {Conversation} conversation */
  async put(conversation) {
    await this.use(
      (store) => set(conversation.id, conversation, store),
      (memory) => memory.set(conversation.id, conversation),
    );
    this.tell(conversation.id);
  }

  /**
   * Changes the stored conversation in one transaction, so that a change another tab made
   * meanwhile is not lost; `change` returns null to leave it as it is. A conversation that is
   * not stored (deleted meanwhile) stays deleted.
   * @param {string} id
   * @param {(conversation: Conversation) => Conversation | null} change
   * @param {{quiet?: boolean}} [options]  quiet: other tabs are not told (an answer's progress,
   *   which they follow themselves: telling them rebuilt their list once a second)
   */
  async update(id, change, { quiet = false } = {}) {
    await this.use(
      (store) =>
        store(
          'readwrite',
          (objects) =>
            // Callbacks, not await: the put must be asked for while the transaction is active.
            new Promise((resolve, reject) => {
              const reading = objects.get(id);
              reading.onerror = () => reject(reading.error);
              reading.onsuccess = () => {
                const stored = readConversation(reading.result);
                const changed = stored && change(stored);
                if (changed) objects.put(changed, id);
                resolve(promisifyRequest(objects.transaction));
              };
            }),
        ),
      (memory) => {
        const stored = memory.get(id);
        const changed = stored && change(stored);
        if (changed) memory.set(id, changed);
      },
    );
    if (!quiet) this.tell(id);
  }

  /** @param {string} id */
  async delete(id) {
    await this.use(
      (store) => del(id, store),
      (memory) => memory.delete(id),
    );
    this.tell(id);
  }

  /** @param {string} id */
  tell(id) {
    this.broadcast?.postMessage({ id });
  }
}
