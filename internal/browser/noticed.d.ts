// Types of noticed.js, the browser module noticed serves at /noticed.js.

export interface ConnectOptions {
  /** noticed's stream URL, e.g. "https://notify.example.com/notice". */
  url: string;
  /**
   * A JWT whose sub is the user, sent as ?token=; or a function giving one
   * (called again for each new connection, so it may refresh it). Leave it
   * out to use the noticed_token cookie with withCredentials.
   */
  token?: string | (() => string | Promise<string>);
  /** Send cookies to another origin (the noticed_token cookie). */
  withCredentials?: boolean;
  /**
   * true (the default): all tabs of this origin and user share one stream
   * (Web Locks + BroadcastChannel); false: one EventSource for this object.
   */
  shared?: boolean;
  /**
   * Start after this event id (one kept from an earlier visit). In shared
   * mode it says where this tab starts if it comes to hold the stream; a tab
   * that joins a stream already held shows the events from then on.
   */
  lastEventId?: string;
  /** Names the tabs that share a stream; by default the token's sub. */
  key?: string;
  /** Milliseconds without a heartbeat after which a tab takes the stream over from a hung one; default 8000. */
  hangTimeout?: number;
}

/**
 * The data of a "read" event: the user's read state, shared by all of
 * their devices. A stream's first event is one (no id), each mark made
 * with POST /notice/read is one more, in order with the events; a tab
 * that joins a shared stream gets the state as the leading tab knows it.
 */
export interface ReadState {
  upTo: string;
  ids: string[];
  unread: number;
}

/** The shape of an EventSource, plus lastEventId. */
export declare class NoticedSource extends EventTarget {
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSED: 2;
  readonly url: string;
  readonly withCredentials: boolean;
  readonly readyState: 0 | 1 | 2;
  /** The id of the last event this tab showed. */
  readonly lastEventId: string;
  /** Whether the stream is shared between tabs. */
  readonly shared: boolean;
  /** Whether this tab holds the shared stream. */
  readonly leading: boolean;
  onopen: ((this: NoticedSource, ev: Event) => any) | null;
  onmessage: ((this: NoticedSource, ev: MessageEvent<string>) => any) | null;
  onerror: ((this: NoticedSource, ev: Event) => any) | null;
  addEventListener(type: "open" | "error", listener: (this: NoticedSource, ev: Event) => any, options?: boolean | AddEventListenerOptions): void;
  addEventListener(type: string, listener: (this: NoticedSource, ev: MessageEvent<string>) => any, options?: boolean | AddEventListenerOptions): void;
  close(): void;
  constructor(options: ConnectOptions);
}

/** Opens a stream of the user's events. */
export declare function connect(options: ConnectOptions): NoticedSource;

/** Orders two Redis entry ids ("<ms>-<seq>"). */
export declare function idLess(a: string, b: string): boolean;
