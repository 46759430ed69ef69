import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { lstatSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { UpstreamIdentitySettings } from '../../config/schema.js';
import { credentialSource, type CredentialSource } from './credential-ref.js';
import { UpstreamAuthError } from './upstream-auth.js';

/** A sealed value and the id of the key that sealed it (stored beside it, so rotated keys still open old rows). */
export interface Sealed {
  keyId: string;
  ciphertext: string;
}

/** A value that cannot be opened: no key with its id, or it (or its context) was tampered with. */
export class TokenDecryptionError extends Error {
  override readonly name = 'TokenDecryptionError';
}

/** Where the gateway's own errors about its token key name it (there is no server to name). */
export const TOKEN_KEY_LABEL = 'gateway.upstreamIdentity.tokenKey';

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The format's version, in front of every ciphertext: another scheme can be told apart later. */
const FORMAT = 'v1.';

interface TokenKey {
  id: string;
  key: Buffer;
}

/**
 * AES-256-GCM for users' upstream tokens at rest. Each value is bound to `context` (its row:
 * the user and the server), so a ciphertext copied into another row does not open. Values are
 * sealed with the current key; those sealed with a key now in `previous` still open, so keys
 * rotate without a migration (rows move to the new key as they are next written).
 */
export class TokenCipher {
  readonly #current: CredentialSource;
  readonly #previous: readonly CredentialSource[];
  /** Parsed keys by their reference's current value: a rotated file is parsed once. */
  readonly #parsed = new Map<string, TokenKey>();

  constructor(current: CredentialSource, previous: readonly CredentialSource[] = []) {
    this.#current = current;
    this.#previous = previous;
  }

  /** The id of the key new values are sealed with; throws `UpstreamAuthError` (`misconfigured`) when it cannot be read. */
  currentKeyId(): string {
    return this.#key(this.#current).id;
  }

  seal(plaintext: string, context: string): Sealed {
    const { id, key } = this.#key(this.#current);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return { keyId: id, ciphertext: FORMAT + Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url') };
  }

  /** The plaintext of `sealed`; throws `TokenDecryptionError` (never quoting the value) when it does not open. */
  open(sealed: Sealed, context: string): string {
    const key = this.#keyWithId(sealed.keyId);
    if (!key) throw new TokenDecryptionError(`no configured token key has the id ${sealed.keyId} (was it removed from previousTokenKeys?)`);
    if (!sealed.ciphertext.startsWith(FORMAT)) throw new TokenDecryptionError('the stored value is not in a known format');
    const raw = Buffer.from(sealed.ciphertext.slice(FORMAT.length), 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new TokenDecryptionError('the stored value is truncated');
    const decipher = createDecipheriv('aes-256-gcm', key.key, raw.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(context, 'utf8'));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new TokenDecryptionError('the stored value failed its integrity check (tampered with, or sealed for another row)');
    }
  }

  #keyWithId(id: string): TokenKey | undefined {
    for (const source of [this.#current, ...this.#previous]) {
      let key: TokenKey;
      try {
        key = this.#key(source);
      } catch {
        continue; // an unreadable previous key opens nothing; the current one's failure shows when sealing
      }
      if (key.id === id) return key;
    }
    return undefined;
  }

  #key(source: CredentialSource): TokenKey {
    const value = source.read();
    let key = this.#parsed.get(value);
    if (!key) {
      const bytes = parseKey(value, source.describe);
      key = { id: keyId(bytes), key: bytes };
      this.#parsed.set(value, key);
    }
    return key;
  }
}

/**
 * A key is 32 bytes, written as base64 (or base64url) or as 64 hex digits: `openssl rand
 * -base64 32`. A passphrase is refused rather than stretched, so a weak one is never silently used.
 */
function parseKey(value: string, describe: string): Buffer {
  const text = value.trim();
  const bytes = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : /^[A-Za-z0-9+/_-]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  if (!bytes || bytes.length !== KEY_BYTES) {
    throw new UpstreamAuthError('misconfigured', TOKEN_KEY_LABEL, `the token key ${describe} must be 32 bytes, as base64 or 64 hex digits (openssl rand -base64 32)`);
  }
  return bytes;
}

/** A key's id: a short hash, so rows name their key without revealing anything of it. */
function keyId(key: Buffer): string {
  return createHash('sha256').update('conflux upstream token key\0').update(key).digest('hex').slice(0, 16);
}

/**
 * The cipher the settings describe. Without `tokenKey`: a key file named after the embedded
 * database's folder (`<dataDir>.token-key`, created once, readable by its owner only), or, for a database kept in
 * memory, a key kept in memory too (both end with the process). With PostgreSQL and no
 * `tokenKey` there is nowhere safe to keep a key: every use fails as `misconfigured`, naming the setting.
 */
export function tokenCipherFor(
  settings: Pick<UpstreamIdentitySettings, 'tokenKey' | 'previousTokenKeys'>,
  env: Readonly<Record<string, string | undefined>>,
  database: { kind: 'postgres' | 'pglite'; dataDirLock?: { dataDir: string } | undefined },
): TokenCipher {
  const previous = settings.previousTokenKeys.map((ref) => credentialSource(TOKEN_KEY_LABEL, ref, env));
  if (settings.tokenKey) return new TokenCipher(credentialSource(TOKEN_KEY_LABEL, settings.tokenKey, env), previous);
  if (database.dataDirLock) return new TokenCipher(keyFileBeside(database.dataDirLock.dataDir, env), previous);
  if (database.kind === 'pglite') return new TokenCipher({ describe: 'a key held in memory', read: memoryKey() }, previous);
  return new TokenCipher(
    {
      describe: TOKEN_KEY_LABEL,
      read: () => {
        throw new UpstreamAuthError('misconfigured', TOKEN_KEY_LABEL, `users' upstream tokens are stored in PostgreSQL: set ${TOKEN_KEY_LABEL} (e.g. env://CONFLUX_TOKEN_KEY holding openssl rand -base64 32)`);
      },
    },
    previous,
  );
}

/**
 * The default key file of an embedded database in `dataDir`: `<dataDir>.token-key`, named after
 * that folder so that no other data folder beside it shares it, created with a fresh key when
 * first needed. Before each read it must still be a regular file (not a link someone could point
 * elsewhere), owned by this process's user and closed to everyone else; otherwise `misconfigured`.
 */
function keyFileBeside(dataDir: string, env: Readonly<Record<string, string | undefined>>): CredentialSource {
  const path = `${resolve(dataDir)}.token-key`;
  const file = credentialSource(TOKEN_KEY_LABEL, pathToFileURL(path).href, env);
  let created = false;
  return {
    describe: file.describe,
    read: () => {
      if (!created) {
        try {
          writeFileSync(path, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { flag: 'wx', mode: 0o600 });
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new UpstreamAuthError('misconfigured', TOKEN_KEY_LABEL, `the token key file ${file.describe} cannot be created (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
        }
        created = true;
      }
      checkKeyFile(path, file.describe);
      return file.read();
    },
  };
}

/** Refuses a default key file that is a symbolic link, another user's, or open to group or others. */
function checkKeyFile(path: string, describe: string): void {
  const refuse = (why: string): never => {
    throw new UpstreamAuthError('misconfigured', TOKEN_KEY_LABEL, `the token key file ${describe} ${why}; fix it or set ${TOKEN_KEY_LABEL}`);
  };
  let stat;
  try {
    stat = lstatSync(path);
  } catch (error) {
    return refuse(`cannot be read (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (stat.isSymbolicLink()) return refuse('is a symbolic link');
  if (!stat.isFile()) return refuse('is not a regular file');
  const uid = process.getuid?.();
  if (uid !== undefined && stat.uid !== uid) return refuse(`is owned by another user (uid ${stat.uid}, the gateway runs as ${uid})`);
  if ((stat.mode & 0o077) !== 0) return refuse(`is readable or writable by others (mode ${(stat.mode & 0o777).toString(8)}; chmod 600 it)`);
}

function memoryKey(): () => string {
  const key = randomBytes(KEY_BYTES).toString('base64');
  return () => key;
}
