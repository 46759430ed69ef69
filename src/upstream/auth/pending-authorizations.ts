import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { OAuthDiscoveryState } from '@modelcontextprotocol/client';

/** How a started authorization ended, for whoever waits on it. */
export type AuthorizationOutcome = { connected: true } | { connected: false; reason: string };

/**
 * One authorization a user was sent to do: what the callback needs to finish it (the PKCE
 * verifier and the discovery it started from, which the SDK checks the callback against) and
 * what waiters hear when it ends.
 */
export interface PendingAuthorization<C = unknown> {
  /**
   * The OAuth `state`: 256 random bits, after the holding replica's id (`holderNamed`). It goes
   * to the authorization server only (in the redirect), never to the user.
   */
  readonly state: string;
  /**
   * The user's link is `/oauth/start/<handle>`: 256 random bits, not the state, after the holding
   * replica's id like the state. Whoever opens it first and confirms binds the authorization to
   * their browser (`bind`).
   */
  readonly handle: string;
  readonly user: string;
  readonly server: string;
  /** The scope asked for (undefined: the upstream's own choice). */
  readonly scope: string | undefined;
  readonly expiresAt: number;
  /** What the starter needs again to finish it (the server's definition as it was, the redirect URL sent). */
  readonly context: C;
  codeVerifier: string | undefined;
  discovery: OAuthDiscoveryState | undefined;
  /** Where the user is sent; set once the SDK built it. */
  authorizationUrl: string | undefined;
  /** Settles once: connected by the callback, or failed, expired or dropped. Never rejects. */
  readonly outcome: Promise<AuthorizationOutcome>;
}

interface Entry<C> extends PendingAuthorization<C> {
  settle(outcome: AuthorizationOutcome): void;
  /** Set once by `bind`: the cookie's name and the SHA-256 of its value (the value itself is only in that browser). */
  binding: { cookie: string; hash: Buffer } | undefined;
}

/** What confirming a link gave: the browser's cookie, or why there is none. */
export type BindResult<C> =
  | { bound: true; record: PendingAuthorization<C>; cookie: { name: string; value: string } }
  | { bound: false; reason: 'unknown' | 'already-bound' };

/** Binding cookies are named `conflux_oauth_<id>`: one per authorization, so two under way in one browser do not overwrite each other. */
export const BINDING_COOKIE_PREFIX = 'conflux_oauth_';

/** What a replica id must be made of to lead a handle or state (the replicas' UUIDs are). */
const HOLDER = /^[A-Za-z0-9-]{1,64}$/;
/** A handle or a state: `<replica id>.` (absent for records of a store that names no holder), then 256 random bits in base64url. */
export const AUTHORIZATION_REFERENCE = /^(?:[A-Za-z0-9-]{1,64}\.)?[A-Za-z0-9_-]{43}$/;

/**
 * The replica a handle or state says holds its record, if it names one. Not a secret, and not a
 * proof: the holder still looks the whole value up, so a forged one names a record nobody has.
 */
export function holderNamed(reference: string): string | undefined {
  const dot = reference.indexOf('.');
  return dot > 0 && AUTHORIZATION_REFERENCE.test(reference) ? reference.slice(0, dot) : undefined;
}

export interface PendingAuthorizationsOptions {
  /** How long a started authorization waits for its callback. */
  ttlMs: number;
  /** Records held at most; the oldest is dropped beyond it. */
  capacity?: number;
  /** Records one user holds at most; their oldest is dropped beyond it, so one user cannot crowd out the others. */
  capacityPerUser?: number;
  /** This replica's id, named in every handle and state so that another replica knows where to send their requests. */
  holder?: string | undefined;
  now?: () => number;
}

const DEFAULT_CAPACITY = 10_000;
const DEFAULT_CAPACITY_PER_USER = 20;

/**
 * Authorizations started and not yet called back, by `state` (the callback) and by `handle`
 * (the user's link, which binds one to a browser before it leaves for the authorization server).
 * In the memory of the replica that started them, whose id leads every handle and state: the
 * link and the callback may reach any replica, which hands them to this one
 * (`http/oauth-routes.ts`). Each record is used once (`take`), expires after `ttlMs`, and the
 * store is bounded in total and per user.
 */
export class PendingAuthorizations<C = unknown> {
  readonly #entries = new Map<string, Entry<C>>();
  readonly #byHandle = new Map<string, Entry<C>>();
  readonly #ttlMs: number;
  readonly #capacity: number;
  readonly #capacityPerUser: number;
  readonly #prefix: string;
  readonly #now: () => number;

  constructor(options: PendingAuthorizationsOptions) {
    if (options.holder !== undefined && !HOLDER.test(options.holder)) throw new Error(`a replica id cannot lead an authorization's handle: ${options.holder}`);
    this.#prefix = options.holder === undefined ? '' : `${options.holder}.`;
    this.#ttlMs = options.ttlMs;
    this.#capacity = options.capacity ?? DEFAULT_CAPACITY;
    this.#capacityPerUser = options.capacityPerUser ?? DEFAULT_CAPACITY_PER_USER;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    this.#sweep();
    return this.#entries.size;
  }

  /** Records a new authorization for `user` on `server`, dropping the oldest records beyond the bounds. */
  create(user: string, server: string, scope: string | undefined, context: C): PendingAuthorization<C> {
    this.#sweep();
    const mine = [...this.#entries.values()].filter((entry) => entry.user === user);
    for (const entry of mine.slice(0, Math.max(0, mine.length - this.#capacityPerUser + 1))) this.#drop(entry, 'replaced by newer authorizations of the same user');
    while (this.#entries.size >= this.#capacity) this.#drop(this.#entries.values().next().value!, 'too many authorizations are waiting');
    let settle!: (outcome: AuthorizationOutcome) => void;
    const outcome = new Promise<AuthorizationOutcome>((resolve) => (settle = resolve));
    let settled = false;
    const entry: Entry<C> = {
      state: `${this.#prefix}${randomBytes(32).toString('base64url')}`,
      handle: `${this.#prefix}${randomBytes(32).toString('base64url')}`,
      binding: undefined,
      user,
      server,
      scope,
      expiresAt: this.#now() + this.#ttlMs,
      context,
      codeVerifier: undefined,
      discovery: undefined,
      authorizationUrl: undefined,
      outcome,
      settle: (result) => {
        if (settled) return;
        settled = true;
        settle(result);
      },
    };
    this.#entries.set(entry.state, entry);
    this.#byHandle.set(entry.handle, entry);
    return entry;
  }

  /** The record the user's link names if it is still waiting (whether bound or not); nothing is changed. */
  byHandle(handle: string): PendingAuthorization<C> | undefined {
    this.#sweep();
    return this.#byHandle.get(handle);
  }

  /** Whether the record was confirmed in a browser already. */
  isBound(record: PendingAuthorization<C>): boolean {
    return (record as Entry<C>).binding !== undefined;
  }

  /**
   * Binds the authorization the link names to the browser confirming it, once: the cookie
   * returned is what its callback must present. A second confirmation (another browser, or the
   * same one again) is refused: the first one owns it.
   */
  bind(handle: string): BindResult<C> {
    this.#sweep();
    const entry = this.#byHandle.get(handle);
    if (!entry) return { bound: false, reason: 'unknown' };
    if (entry.binding) return { bound: false, reason: 'already-bound' };
    const cookie = { name: `${BINDING_COOKIE_PREFIX}${randomBytes(8).toString('hex')}`, value: randomBytes(32).toString('base64url') };
    entry.binding = { cookie: cookie.name, hash: sha256(cookie.value) };
    return { bound: true, record: entry, cookie };
  }

  /**
   * Whether `cookies` (those the callback's browser sent) hold the record's binding. False for a
   * record never confirmed: its callback cannot come from a browser that asked for it.
   */
  presentedBinding(record: PendingAuthorization<C>, cookies: Readonly<Record<string, string>>): boolean {
    const binding = (record as Entry<C>).binding;
    const value = binding ? cookies[binding.cookie] : undefined;
    return binding !== undefined && value !== undefined && timingSafeEqual(sha256(value), binding.hash);
  }

  /** The name of the record's binding cookie (to clear it), if it was confirmed. */
  bindingCookie(record: PendingAuthorization<C>): string | undefined {
    return (record as Entry<C>).binding?.cookie;
  }

  /**
   * An authorization of `user` on `server` still waiting, with its URL, for `scope`, and with at
   * least half its time left, not yet confirmed in a browser: a user asked twice (two calls,
   * two clients) gets one URL to open, and one who confirmed and gave up gets a fresh one.
   */
  reusable(user: string, server: string, scope: string | undefined): PendingAuthorization<C> | undefined {
    this.#sweep();
    const now = this.#now();
    let found: Entry<C> | undefined;
    for (const entry of this.#entries.values()) {
      if (entry.user === user && entry.server === server && entry.scope === scope && entry.authorizationUrl && !entry.binding && entry.expiresAt - now >= this.#ttlMs / 2) found = entry;
    }
    return found;
  }

  /** The record of `state` if it is still waiting, removed: a state is good for one callback only. */
  take(state: string): PendingAuthorization<C> | undefined {
    this.#sweep();
    const entry = this.#entries.get(state);
    if (!entry) return undefined;
    this.#entries.delete(state);
    this.#byHandle.delete(entry.handle);
    return entry;
  }

  /** Removes a record that could not be started (its URL was never handed out). */
  discard(record: PendingAuthorization<C>, reason: string): void {
    const entry = this.#entries.get(record.state);
    if (entry === record) this.#drop(entry, reason);
  }

  /** Tells the waiters of a taken record how it ended. */
  settle(record: PendingAuthorization<C>, outcome: AuthorizationOutcome): void {
    (record as Entry<C>).settle(outcome);
  }

  /** Drops every record of `user` on `server` (their connection was revoked or replaced). */
  dropFor(user: string, server: string, reason: string): void {
    for (const entry of [...this.#entries.values()]) if (entry.user === user && entry.server === server) this.#drop(entry, reason);
  }

  /** Drops everything (the gateway is stopping): waiters are told so. */
  clear(reason: string): void {
    for (const entry of [...this.#entries.values()]) this.#drop(entry, reason);
  }

  /** Records are kept in creation order, each with the same lifetime: the expired ones are at the front. */
  #sweep(): void {
    const now = this.#now();
    for (const entry of this.#entries.values()) {
      if (entry.expiresAt > now) break;
      this.#drop(entry, 'the authorization was not completed in time');
    }
  }

  #drop(entry: Entry<C>, reason: string): void {
    this.#entries.delete(entry.state);
    this.#byHandle.delete(entry.handle);
    entry.settle({ connected: false, reason });
  }
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
