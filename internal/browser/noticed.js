// noticed.js: the browser side of noticed. An ES module with no build step
// and no dependencies, served by noticed at /noticed.js (types at
// /noticed.d.ts).
//
//   import { connect } from "https://notify.example.com/noticed.js";
//   const src = connect({ url: "https://notify.example.com/notice", token });
//   src.addEventListener("order.shipped", (e) => show(e.data));
//
// shared: true (the default): all tabs of one origin and user share one
// stream. One tab holds it (a Web Lock), the others get its events over a
// BroadcastChannel. When that tab closes, the lock passes to another tab at
// once; when it hangs (no heartbeat for hangTimeout), another tab steals the
// lock. The new holder resumes from the last id it saw, and every tab shows
// an event only if its id is above the last one it showed, so nothing is
// lost or shown twice.
//
// shared: false: a native EventSource, reconnected with a growing, random
// delay when the server refuses it (429, 503, ...), where EventSource alone
// would give up.

const HEARTBEAT_MS = 1000;
const HANG_MS = 8000;
const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60000;

/** Opens a stream of the user's events; see NoticedSource. */
export function connect(options) {
  return new NoticedSource(options);
}

// idLess orders Redis entry ids ("<ms>-<seq>"); ids it cannot read are
// compared as text.
export function idLess(a, b) {
  const pa = /^(\d+)-(\d+)$/.exec(a), pb = /^(\d+)-(\d+)$/.exec(b);
  if (!pa || !pb) return a < b;
  const ma = BigInt(pa[1]), mb = BigInt(pb[1]);
  return ma < mb || (ma === mb && BigInt(pa[2]) < BigInt(pb[2]));
}

// subject reads a JWT's sub without checking it: it only names the
// channel, so that tabs of different users never share one.
function subject(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const sub = JSON.parse(atob(part)).sub;
    return sub === undefined ? "" : String(sub);
  } catch {
    return "";
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

export class NoticedSource extends EventTarget {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;

  #token; #withCredentials; #origin; #handlers = {};
  #state = 0; #last = ""; #retry = 2000; #failures = 0;
  #types = new Set(["message", "gap", "read"]);
  // shared mode
  #name = ""; #bc = null; #leading = false; #lockAbort = null; #release = null;
  #streamAbort = null; #beatTimer = null; #watchTimer = null; #lastBeat = 0; #stealing = false;
  // the user's read state as this tab last knew it, kept up to date with
  // the events since, so that the leader can give it to a tab that joins
  #readNow = null;
  // native mode
  #es = null; #retryTimer = null;

  constructor({ url, token, withCredentials = false, shared = true, lastEventId = "", key, hangTimeout = HANG_MS } = {}) {
    super();
    if (!url) throw new TypeError("noticed: url is required");
    this.url = new URL(url, globalThis.location?.href).href;
    this.#origin = new URL(this.url).origin;
    this.#token = token;
    this.#withCredentials = withCredentials;
    this.#last = lastEventId;
    this.hangTimeout = hangTimeout;
    this.shared = shared && typeof BroadcastChannel === "function" && !!globalThis.navigator?.locks;
    if (this.shared) this.#startShared(key);
    else this.#openNative();
  }

  get readyState() { return this.#state; }
  get withCredentials() { return this.#withCredentials; }
  /** The id of the last event this tab showed. */
  get lastEventId() { return this.#last; }
  /** Whether this tab holds the shared stream. */
  get leading() { return this.#leading; }

  get onopen() { return this.#handlers.open ?? null; }
  set onopen(f) { this.#handlers.open = f; }
  get onmessage() { return this.#handlers.message ?? null; }
  set onmessage(f) { this.#handlers.message = f; }
  get onerror() { return this.#handlers.error ?? null; }
  set onerror(f) { this.#handlers.error = f; }

  addEventListener(type, listener, options) {
    // A native EventSource fires a typed event only at listeners of that
    // type, so each type asked for here is listened to there too.
    if (!this.#types.has(type) && !["open", "error"].includes(type)) {
      this.#types.add(type);
      this.#es?.addEventListener(type, this.#fromNative);
    }
    super.addEventListener(type, listener, options);
  }

  close() {
    if (this.#state === NoticedSource.CLOSED) return;
    this.#state = NoticedSource.CLOSED;
    this.#es?.close();
    clearTimeout(this.#retryTimer);
    clearInterval(this.#watchTimer);
    this.#stopLeading();
    this.#lockAbort?.abort();
    this.#bc?.close();
  }

  #fire(type, init) {
    const ev = type === "open" || type === "error" ? new Event(type) : new MessageEvent(type, init);
    this.dispatchEvent(ev);
    const h = this.#handlers[type];
    if (typeof h === "function") h.call(this, ev);
  }

  // #setState fires open on the way to OPEN and error on the way out of
  // it, as EventSource does.
  #setState(s) {
    if (this.#state === NoticedSource.CLOSED || this.#state === s) return;
    this.#state = s;
    this.#fire(s === NoticedSource.OPEN ? "open" : "error");
  }

  // #deliver shows an event once: one with an id only if the id is above
  // the last shown; an event without an id (gap) always.
  #deliver(m) {
    if (this.#state === NoticedSource.CLOSED) return;
    if (m.hasId) {
      if (this.#last && !idLess(this.#last, m.id)) return;
      this.#last = m.id;
    }
    this.#track(m);
    this.#fire(m.type, { data: m.data, lastEventId: m.hasId ? m.id : this.#last, origin: this.#origin });
  }

  // #track keeps #readNow: a read event gives the state; each event after
  // it is one more unread.
  #track(m) {
    if (m.type === "read") {
      try { this.#readNow = JSON.parse(m.data); } catch { /* not noticed's */ }
    } else if (m.type !== "gap" && m.hasId && this.#readNow) {
      this.#readNow.unread++;
    }
  }

  #position(id) {
    if (id && (!this.#last || idLess(this.#last, id))) this.#last = id;
  }

  async #streamURL(lastId) {
    const u = new URL(this.url);
    let tok = this.#token;
    if (typeof tok === "function") tok = await tok();
    if (tok) u.searchParams.set("token", tok);
    if (lastId) u.searchParams.set("lastEventId", lastId);
    return u.href;
  }

  #backoff(floorMs = 0) {
    this.#failures++;
    const cap = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** Math.min(this.#failures, 10));
    return Math.max(floorMs, cap / 2 + Math.random() * cap / 2);
  }

  // ---- native EventSource (shared: false) ----

  #fromNative = (e) => {
    // Every event noticed sends has an id but gap and the read state a
    // stream starts with, whose lastEventId is the one before them: ids
    // only grow, so a read event at the last id shown carried none.
    const idless = e.type === "gap" || (e.type === "read" && e.lastEventId === this.#last);
    this.#deliver({ type: e.type, data: e.data, id: e.lastEventId, hasId: !idless && !!e.lastEventId });
  };

  async #openNative() {
    const es = new EventSource(await this.#streamURL(this.#last), { withCredentials: this.#withCredentials });
    if (this.#state === NoticedSource.CLOSED) return es.close();
    this.#es = es;
    for (const t of this.#types) es.addEventListener(t, this.#fromNative);
    es.onopen = () => {
      this.#failures = 0;
      this.#setState(NoticedSource.OPEN);
    };
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) return this.#setState(NoticedSource.CONNECTING);
      // Refused (429, 503, 401 ...): EventSource gives up; come back later.
      es.close();
      this.#es = null;
      this.#setState(NoticedSource.CONNECTING);
      if (this.#state !== NoticedSource.CLOSED) this.#retryTimer = setTimeout(() => this.#openNative(), this.#backoff());
    };
  }

  // ---- one stream for all tabs (shared: true) ----

  async #startShared(key) {
    if (key === undefined) {
      let tok = this.#token;
      if (typeof tok === "function") tok = await tok();
      key = tok ? subject(tok) : "cookie";
    }
    if (this.#state === NoticedSource.CLOSED) return;
    this.#name = `noticed ${this.url} ${key}`;
    this.#bc = new BroadcastChannel(this.#name);
    this.#bc.onmessage = (e) => this.#onShared(e.data);
    this.#lastBeat = Date.now();
    this.#bc.postMessage({ t: "hello" });
    this.#requestLock(false);
    this.#watchTimer = setInterval(() => this.#watch(), HEARTBEAT_MS);
  }

  #onShared(m) {
    if (this.#leading) {
      if (m.t === "hello") {
        this.#beat();
        // The stream's first read state went out before this tab came.
        if (this.#readNow) this.#post({ t: "rs", data: JSON.stringify(this.#readNow) });
      }
      return;
    }
    if (m.t === "hello") return;
    if (m.t === "rs") {
      if (!this.#readNow) this.#deliver({ type: "read", data: m.data, hasId: false });
      return;
    }
    this.#lastBeat = Date.now();
    if (m.t === "ev") this.#deliver(m);
    else if (m.t === "pos") this.#position(m.id);
    else if (m.t === "hb") {
      this.#position(m.id);
      this.#setState(m.state);
    }
  }

  #post(m) {
    try { this.#bc?.postMessage(m); } catch { /* closed */ }
  }

  #beat() {
    this.#post({ t: "hb", state: this.#state, id: this.#last });
  }

  #requestLock(steal) {
    this.#lockAbort?.abort();
    const ac = new AbortController();
    this.#lockAbort = ac;
    const opts = steal ? { steal: true } : { signal: ac.signal };
    navigator.locks.request(this.#name, opts, () => this.#lead()).catch(() => {
      // Aborted (closed, or about to steal), or stolen from us while we
      // held it: the tab that stole it leads now.
      if (this.#leading) {
        this.#stopLeading();
        if (this.#state !== NoticedSource.CLOSED) this.#requestLock(false);
      }
    });
  }

  // #watch steals the lock from a holder that has stopped beating (a hung
  // tab), after a random pause so that the tabs do not all steal at once.
  async #watch() {
    if (this.#leading || this.#stealing || this.#state === NoticedSource.CLOSED) return;
    if (Date.now() - this.#lastBeat < this.hangTimeout) return;
    this.#stealing = true;
    await sleep(Math.random() * 2000);
    this.#stealing = false;
    if (this.#leading || this.#state === NoticedSource.CLOSED || Date.now() - this.#lastBeat < this.hangTimeout) return;
    this.#requestLock(true);
  }

  #lead() {
    if (this.#state === NoticedSource.CLOSED) return;
    this.#leading = true;
    this.#streamAbort = new AbortController();
    this.#beatTimer = setInterval(() => this.#beat(), HEARTBEAT_MS);
    this.#beat();
    this.#stream(this.#streamAbort.signal);
    return new Promise((resolve) => { this.#release = resolve; });
  }

  #stopLeading() {
    this.#leading = false;
    clearInterval(this.#beatTimer);
    this.#streamAbort?.abort();
    this.#release?.();
    this.#release = null;
    this.#lastBeat = Date.now();
  }

  async #stream(signal) {
    while (!signal.aborted) {
      let wait;
      try {
        const res = await fetch(await this.#streamURL(this.#last), {
          credentials: this.#withCredentials ? "include" : "same-origin",
          cache: "no-store",
          headers: { Accept: "text/event-stream" },
          signal,
        });
        if (res.ok && (res.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
          this.#setState(NoticedSource.OPEN);
          this.#beat();
          await this.#read(res.body, signal);
          wait = this.#retry * (0.5 + Math.random() / 2);
        } else {
          res.body?.cancel().catch(() => {});
          const after = 1000 * Number(res.headers.get("Retry-After") || 0);
          wait = this.#backoff(Number.isFinite(after) ? after : 0);
        }
      } catch {
        if (signal.aborted) return;
        wait = this.#backoff();
      }
      if (signal.aborted) return;
      this.#setState(NoticedSource.CONNECTING);
      this.#beat();
      await sleep(wait, signal);
    }
  }

  // #read parses the event stream as the HTML standard says, hands each
  // event to this tab and to the others, and returns when it ends.
  async #read(body, signal) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
    let buf = "", data = [], type = "", id = null;
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ done: true }));
      if (done || signal.aborted) return;
      this.#failures = 0;
      buf += value;
      for (;;) {
        const i = buf.search(/[\r\n]/);
        if (i < 0 || (buf[i] === "\r" && i === buf.length - 1)) break;
        const line = buf.slice(0, i);
        buf = buf.slice(i + (buf[i] === "\r" && buf[i + 1] === "\n" ? 2 : 1));
        if (line === "") {
          if (data.length > 0) {
            const m = { t: "ev", type: type || "message", data: data.join("\n"), id: id ?? this.#last, hasId: id !== null };
            this.#deliver(m);
            this.#post(m);
          } else if (id !== null) {
            // An id-only block: noticed's position, sent first on a stream
            // opened without an id, so that a tab that takes over before
            // any event resumes from it.
            this.#position(id);
            this.#post({ t: "pos", id });
          }
          data = []; type = ""; id = null;
          continue;
        }
        if (line[0] === ":") continue;
        const c = line.indexOf(":");
        const field = c < 0 ? line : line.slice(0, c);
        let v = c < 0 ? "" : line.slice(c + 1);
        if (v[0] === " ") v = v.slice(1);
        if (field === "data") data.push(v);
        else if (field === "event") type = v;
        else if (field === "id" && !v.includes("\0")) id = v;
        else if (field === "retry" && /^\d+$/.test(v)) this.#retry = Number(v);
      }
    }
  }
}
