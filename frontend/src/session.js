// @ts-check
// The session (`POST /api/token`) and the real-time connection it opens: started, and tried
// again (backing off) while it cannot be; renewed when the server says the page's has ended,
// another user's session adopted (and other tabs told); a refused connection explained.
import { cannotConnect, connectionLost, disconnected, messageOf } from './words.js';
import { withoutAdvice } from './waiting.js';

/** @import { Centrifuge } from 'centrifuge' */
/** @import { Session } from './api.js' */

/** How long starting the session may take before the status line says "Connecting…". */
export const CONNECTING_SAID_AFTER_MS = 500;
/** A session that could not be started is asked for again by itself this much later, then
 * twice as long each time, up to SESSION_RETRY_MAX_MS (Retry asks at once). */
export const SESSION_RETRY_MS = 2_000;
export const SESSION_RETRY_MAX_MS = 30_000;

/**
 * What the session works with, given by the page (fakes in the tests).
 * @typedef {object} SessionEdges
 * @property {(token: string, getToken: () => Promise<string>) => Centrifuge} connectTo
 *   a client of the real-time server for `token`, not connected yet; `getToken` gives it a fresh
 *   token when that one expires
 * @property {() => Promise<Session>} fetchToken  `POST /api/token`
 * @property {() => Promise<{ok: boolean, status: number, reason: string}>} checkReady
 * @property {() => Promise<unknown>} prepare  what else the page needs before it starts (its limits)
 * @property {(text: string, retry?: () => void) => void} say  the status line's connection part
 *   (empty: nothing to say)
 * @property {() => string} shown  what that part says now
 * @property {(text: string) => void} announce  said to a screen reader
 * @property {() => number} answersUnderWay
 * @property {(why: string) => void} userChanged  the answers still arriving cannot be followed
 *   any more: their channels are the old user's
 * @property {() => void} started  the session and its connection are there the first time
 * @property {() => void} changed  another user's session was adopted
 * @property {string} origin  the page's, for the operator's note on a refused connection
 * @property {Pick<BroadcastChannel, 'postMessage' | 'addEventListener'> | null} news  the other
 *   tabs of the page (they share the cookie)
 */

export class LiveSession {
  /** @param {SessionEdges} edges */
  constructor(edges) {
    this.edges = edges;
    /** The connection and the user it is for, once the session started. */
    this.connection = /** @type {{centrifuge: Centrifuge, user: string} | null} */ (null);
    this.wasConnected = false;
    this.restarting = false;
    /** @type {WeakSet<Centrifuge>} connections of sessions that ended: their news is old */
    this.retired = new WeakSet();
    this.explaining = false;
    /** @type {Promise<Session> | null} the `POST /api/token` in flight, for all who ask at once */
    this.renewing = null;
    this.starting = false;
    /** Attempts to start the session so far. */
    this.attempts = 0;
    this.retryMs = SESSION_RETRY_MS;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.retryTimer = undefined;
    /** Retry, on a session that could not be started. */
    this.retry = () => this.start('retry');
    // Other tabs' news of a new session (the cookie is shared): this one asks for it too.
    edges.news?.addEventListener('message', (event) => {
      if (this.connection && /** @type {MessageEvent} */ (event).data !== this.connection.user) this.renew();
    });
  }

  /**
   * Connects to the real-time server with the session's token; when that token expires,
   * centrifuge-js asks `getToken` for a fresh one (should the session have ended meanwhile, that
   * starts a new one, as another user: see `adopt`).
   * @param {Session} session
   */
  connect(session) {
    const { edges } = this;
    const centrifuge = edges.connectTo(session.token, async () => (await this.current()).token);
    /** Connects again at once, instead of at the end of centrifuge-js's back-off. */
    const reconnectNow = () => {
      this.restarting = true;
      centrifuge.disconnect();
      this.restarting = false;
      centrifuge.connect();
    };
    centrifuge.on('connected', () => {
      if (this.retired.has(centrifuge)) return;
      // Back after the status line said it was lost (or could not be made): said, not only the
      // line going without a word.
      const recovered = edges.shown() ? (this.wasConnected ? 'Reconnected.' : 'Connected.') : '';
      this.wasConnected = true;
      edges.say('');
      if (recovered) edges.announce(recovered);
    });
    centrifuge.on('connecting', (ctx) => {
      // The answers under way go on once it is back; with none, none is promised. Why it was
      // lost ("transport closed") is the client library's word, for the console.
      if (this.wasConnected && !this.retired.has(centrifuge)) edges.say(connectionLost(ctx, edges.answersUnderWay()));
    });
    centrifuge.on('error', (ctx) => {
      // Never connected: the real-time server is down, or it refuses this page's origin.
      if (this.retired.has(centrifuge)) return;
      if (!this.wasConnected && ctx.type === 'transport') this.explainRefused(reconnectNow);
    });
    centrifuge.on('disconnected', (ctx) => {
      if (this.restarting || this.retired.has(centrifuge)) return;
      edges.say(disconnected(ctx), () => centrifuge.connect());
    });
    centrifuge.connect();
    return centrifuge;
  }

  /** @param {() => void} retry */
  async explainRefused(retry) {
    if (this.explaining || this.wasConnected) return;
    const { edges } = this;
    this.explaining = true;
    const ready = await edges.checkReady();
    if (!this.wasConnected && this.connection?.centrifuge && !this.retired.has(this.connection.centrifuge)) {
      // The backend is up and the real-time server refuses: an origin it does not allow, or a
      // proxy that drops WebSockets; which, the page cannot tell. The reader is told what it
      // means for them (answers come through the snapshot, in steps); the operator's setting
      // goes to the console.
      if (ready.ok) {
        console.warn(
          `relaychat: the real-time server refused the connection from ${edges.origin} while the ` +
            'backend is up: is this origin in CENTRIFUGO_CLIENT_ALLOWED_ORIGINS, does a proxy drop WebSockets, or ' +
            'does this address hold 200 already (a 429 in the nginx access log)?',
        );
      }
      edges.say(
        ready.ok
          ? 'Cannot connect to the server for live answers (something on the way may be blocking it): ' +
              'answers still come, in steps rather than as they are written. Retrying…'
          : cannotConnect(ready),
        retry,
      );
    }
    this.explaining = false;
  }

  /**
   * A session other than the page's (its cookie expired or was cleared, or the server's secret
   * changed, and `POST /api/token` started a new one, as another user) replaces it: the answers
   * still arriving cannot be followed any more (their channels are the old user's), and new
   * prompts go out as the new user. Before, every prompt and Retry failed until a reload. Other
   * tabs (the cookie is theirs too) are told, and ask for the session themselves.
   * @param {Session} session
   */
  adopt(session) {
    if (!this.connection || session.user === this.connection.user) return;
    const { edges } = this;
    edges.userChanged('the session ended, and a new one has started');
    const old = this.connection.centrifuge;
    this.retired.add(old);
    old.disconnect();
    this.wasConnected = false; // the new connection's news is its own, not a lost connection's
    this.connection = { centrifuge: this.connect(session), user: session.user };
    edges.news?.postMessage(session.user);
    edges.announce('Your session ended; a new one has started.');
    edges.changed();
  }

  /**
   * The session as the server has it now (`POST /api/token`: the cookie's, or a new one), adopted
   * if it is another user's. One request however many ask at once: each would otherwise start a
   * user of its own when the cookie is gone, and the last reply read need not be the cookie's.
   * @returns {Promise<Session>}
   */
  async current() {
    this.renewing ??= this.edges.fetchToken().finally(() => {
      this.renewing = null;
    });
    const session = await this.renewing;
    this.adopt(session);
    return session;
  }

  /**
   * Asks for the session again (the server said there is none, or that the page's user is not
   * the cookie's) and adopts what comes back; whether that went through.
   */
  async renew() {
    try {
      await this.current();
      return true;
    } catch (error) {
      this.edges.say(`Session failed: cannot start a session (${withoutAdvice(messageOf(error))}).`, () => this.renew());
      return false;
    }
  }

  /**
   * Starts the session (`POST /api/token`) and the connection; when that fails, offers Retry and
   * tries again by itself, backing off (the page stayed unusable until Retry was found).
   * @param {'first' | 'retry' | 'again'} [how]  `retry`: Retry was pressed: it stays (with the
   *   keyboard on it) while the session is asked for again (the line emptied and drawn again
   *   dropped the keyboard to the page's start when it failed again); `again`: the page's own
   *   try, which leaves the line as it is (the same failure again is not news)
   */
  async start(how = 'first') {
    if (this.starting || this.connection) return;
    const { edges } = this;
    clearTimeout(this.retryTimer);
    this.starting = true;
    const attempt = (this.attempts += 1);
    if (how === 'retry') edges.say('Connecting…', this.retry);
    else if (how === 'first') {
      // Said only when it takes a while: not a flash of the line (and a word) at every load.
      setTimeout(() => this.starting && attempt === this.attempts && edges.say('Connecting…'), CONNECTING_SAID_AFTER_MS);
    }
    const [session] = await Promise.allSettled([edges.fetchToken(), edges.prepare()]);
    this.starting = false;
    if (session.status === 'rejected') {
      edges.say(
        `Session failed: cannot start a session (${withoutAdvice(messageOf(session.reason))}). ` +
          'The page keeps trying; Retry tries now.',
        this.retry,
      );
      this.retryTimer = setTimeout(() => this.start('again'), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, SESSION_RETRY_MAX_MS);
      return;
    }
    this.retryMs = SESSION_RETRY_MS;
    edges.say('');
    this.connection = { centrifuge: this.connect(session.value), user: session.value.user };
    edges.started();
  }
}
