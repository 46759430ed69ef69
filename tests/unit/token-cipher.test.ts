import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { credentialSource } from '../../src/upstream/auth/credential-ref.js';
import { TokenCipher, tokenCipherFor, TokenDecryptionError } from '../../src/upstream/auth/token-cipher.js';
import { UpstreamAuthError } from '../../src/upstream/auth/upstream-auth.js';

const key = () => randomBytes(32).toString('base64');
const literal = (value: string) => credentialSource('test', value, {});
const TOKEN = 'upstream-access-token-0123456789';
const ROW = 'token\0alice\0docs';

describe('the token cipher (AES-256-GCM)', () => {
  const folder = mkdtempSync(join(tmpdir(), 'conflux-cipher-'));
  afterAll(() => rmSync(folder, { recursive: true, force: true }));

  it('opens what it sealed, and the sealed form shows nothing of the value', () => {
    const cipher = new TokenCipher(literal(key()));
    const sealed = cipher.seal(TOKEN, ROW);
    expect(sealed.keyId).toBe(cipher.currentKeyId());
    expect(sealed.ciphertext).not.toContain(TOKEN);
    expect(Buffer.from(sealed.ciphertext.slice(3), 'base64url').toString('latin1')).not.toContain(TOKEN);
    expect(cipher.open(sealed, ROW)).toBe(TOKEN);
    // Two seals of one value differ (a fresh IV each time).
    expect(cipher.seal(TOKEN, ROW).ciphertext).not.toBe(sealed.ciphertext);
  });

  it('refuses a tampered ciphertext, and one moved to another row', () => {
    const cipher = new TokenCipher(literal(key()));
    const sealed = cipher.seal(TOKEN, ROW);
    const raw = Buffer.from(sealed.ciphertext.slice(3), 'base64url');
    raw[20] = raw[20]! ^ 0x01;
    const tampered = { ...sealed, ciphertext: `v1.${raw.toString('base64url')}` };
    expect(() => cipher.open(tampered, ROW)).toThrow(TokenDecryptionError);
    expect(() => cipher.open(sealed, 'token\0mallory\0docs')).toThrow(TokenDecryptionError);
    expect(() => cipher.open({ ...sealed, ciphertext: 'v1.AAAA' }, ROW)).toThrow(TokenDecryptionError);
    const failure = (() => {
      try {
        cipher.open(tampered, ROW);
      } catch (error) {
        return error as Error;
      }
    })();
    expect(failure?.message).not.toContain(TOKEN);
  });

  it('rotates keys: the old key in previousTokenKeys still opens old rows, new rows use the new key', () => {
    const oldKey = key();
    const newKey = key();
    const before = new TokenCipher(literal(oldKey));
    const oldRow = before.seal(TOKEN, ROW);
    const after = new TokenCipher(literal(newKey), [literal(oldKey)]);
    expect(after.open(oldRow, ROW)).toBe(TOKEN);
    const newRow = after.seal('a newer token', ROW);
    expect(newRow.keyId).not.toBe(oldRow.keyId);
    expect(newRow.keyId).toBe(after.currentKeyId());
    // Without the old key, old rows no longer open (and say which key they need).
    const forgetful = new TokenCipher(literal(newKey));
    expect(() => forgetful.open(oldRow, ROW)).toThrow(new RegExp(oldRow.keyId));
    expect(forgetful.open(newRow, ROW)).toBe('a newer token');
  });

  it('takes the key from a credential reference: env:// and file:/// (hex or base64), refusing a passphrase', () => {
    const hex = randomBytes(32).toString('hex');
    const fromEnv = tokenCipherFor({ tokenKey: 'env://TOKEN_KEY', previousTokenKeys: [] }, { TOKEN_KEY: hex }, { kind: 'postgres' });
    const sealed = fromEnv.seal(TOKEN, ROW);
    const file = join(folder, 'key');
    writeFileSync(file, `${Buffer.from(hex, 'hex').toString('base64')}\n`);
    const fromFile = tokenCipherFor({ tokenKey: pathToFileURL(file).href, previousTokenKeys: [] }, {}, { kind: 'postgres' });
    expect(fromFile.open(sealed, ROW)).toBe(TOKEN);

    const weak = tokenCipherFor({ tokenKey: 'env://TOKEN_KEY', previousTokenKeys: [] }, { TOKEN_KEY: 'correct horse battery staple' }, { kind: 'postgres' });
    expect(() => weak.seal(TOKEN, ROW)).toThrow(UpstreamAuthError);
    expect(() => weak.seal(TOKEN, ROW)).toThrow(/32 bytes/);
    const unset = tokenCipherFor({ tokenKey: undefined, previousTokenKeys: [] }, {}, { kind: 'postgres' });
    expect(() => unset.seal(TOKEN, ROW)).toThrow(/tokenKey/);
  });

  it('keeps a key file beside an embedded database, created once and readable by its owner only', () => {
    const dataDir = join(folder, 'pgdata');
    const first = tokenCipherFor({ tokenKey: undefined, previousTokenKeys: [] }, {}, { kind: 'pglite', dataDirLock: { dataDir } });
    const sealed = first.seal(TOKEN, ROW);
    const keyFile = join(folder, 'pgdata.token-key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'base64')).toHaveLength(32);
    const second = tokenCipherFor({ tokenKey: undefined, previousTokenKeys: [] }, {}, { kind: 'pglite', dataDirLock: { dataDir } });
    expect(second.open(sealed, ROW)).toBe(TOKEN);
    // Another data folder beside it has its own key file.
    const other = tokenCipherFor({ tokenKey: undefined, previousTokenKeys: [] }, {}, { kind: 'pglite', dataDirLock: { dataDir: join(folder, 'other') } });
    other.seal(TOKEN, ROW);
    expect(readFileSync(join(folder, 'other.token-key'), 'utf8')).not.toBe(readFileSync(keyFile, 'utf8'));
    expect(() => other.open(sealed, ROW)).toThrow(TokenDecryptionError);
  });

  it('refuses a default key file open to others, or one that is a symbolic link', () => {
    const loose = join(folder, 'loose');
    writeFileSync(`${loose}.token-key`, `${key()}\n`, { mode: 0o644 });
    chmodSync(`${loose}.token-key`, 0o644);
    const wide = tokenCipherFor({ tokenKey: undefined, previousTokenKeys: [] }, {}, { kind: 'pglite', dataDirLock: { dataDir: loose } });
    expect(() => wide.seal(TOKEN, ROW)).toThrow(UpstreamAuthError);
    expect(() => wide.seal(TOKEN, ROW)).toThrow(/readable or writable by others \(mode 644/);

    const target = join(folder, 'elsewhere.key');
    writeFileSync(target, `${key()}\n`, { mode: 0o600 });
    const linked = join(folder, 'linked');
    symlinkSync(target, `${linked}.token-key`);
    const viaLink = tokenCipherFor({ tokenKey: undefined, previousTokenKeys: [] }, {}, { kind: 'pglite', dataDirLock: { dataDir: linked } });
    expect(() => viaLink.seal(TOKEN, ROW)).toThrow(/is a symbolic link/);
  });
});
