import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpstreamAuthSchema, type StaticAuthConfig } from '../../src/config/schema.js';
import { staticAuth } from '../../src/upstream/auth/static-auth.js';

const config = (auth: Record<string, unknown>) => UpstreamAuthSchema.parse(auth) as StaticAuthConfig;
const credentialsOf = (auth: Record<string, unknown>, env: Record<string, string> = { SECRET: 's3cr3t-value' }) => staticAuth('svc', config(auth), env).credentials();

describe('static upstream credentials', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'conflux-static-auth-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('puts each method in its default header', async () => {
    expect(await credentialsOf({ method: 'bearer', credential: 'env://SECRET' })).toEqual({ headers: { Authorization: 'Bearer s3cr3t-value' }, query: {} });
    expect(await credentialsOf({ method: 'api_key', credential: 'env://SECRET' })).toEqual({ headers: { 'X-API-Key': 's3cr3t-value' }, query: {} });
    expect(await credentialsOf({ method: 'basic', username: 'svc-user', credential: 'env://SECRET' })).toEqual({
      headers: { Authorization: `Basic ${Buffer.from('svc-user:s3cr3t-value').toString('base64')}` },
      query: {},
    });
    expect(await credentialsOf({ method: 'template', template: 'Token {credential}', credential: 'env://SECRET' })).toEqual({ headers: { Authorization: 'Token s3cr3t-value' }, query: {} });
  });

  it('honours a configured header, prefix and template', async () => {
    expect(await credentialsOf({ method: 'bearer', credential: 'env://SECRET', header: 'X-Upstream-Auth', prefix: 'token ' })).toEqual({ headers: { 'X-Upstream-Auth': 'token s3cr3t-value' }, query: {} });
    expect(await credentialsOf({ method: 'api_key', credential: 'env://SECRET', header: 'Api-Token', prefix: 'k:' })).toEqual({ headers: { 'Api-Token': 'k:s3cr3t-value' }, query: {} });
    expect(await credentialsOf({ method: 'template', template: 'key={credential};v=1', header: 'X-Sig', credential: 'env://SECRET' })).toEqual({ headers: { 'X-Sig': 'key=s3cr3t-value;v=1' }, query: {} });
  });

  it('puts a query credential in access_token or api_key unless a param is named', async () => {
    expect(await credentialsOf({ method: 'bearer', location: 'query', credential: 'env://SECRET' })).toEqual({ headers: {}, query: { access_token: 's3cr3t-value' } });
    expect(await credentialsOf({ method: 'api_key', location: 'query', credential: 'env://SECRET' })).toEqual({ headers: {}, query: { api_key: 's3cr3t-value' } });
    expect(await credentialsOf({ method: 'api_key', location: 'query', param: 'key', credential: 'env://SECRET' })).toEqual({ headers: {}, query: { key: 's3cr3t-value' } });
  });

  it('is not ready while its credential cannot be read, and says which', async () => {
    const auth = staticAuth('svc', config({ method: 'bearer', credential: 'env://MISSING' }), {});
    await expect(auth.ready()).rejects.toMatchObject({ name: 'UpstreamAuthError', kind: 'misconfigured', message: 'the credential env://MISSING is not set' });
    await expect(auth.credentials()).rejects.toMatchObject({ kind: 'misconfigured' });
  });

  it('retries a refused request once only when the credential file changed since it was sent', async () => {
    const path = join(dir, 'key');
    await writeFile(path, 'key-one\n');
    const auth = staticAuth('svc', config({ method: 'api_key', credential: pathToFileURL(path).href }), {});
    expect((await auth.credentials()).headers).toEqual({ 'X-API-Key': 'key-one' });
    expect(await auth.onRejected({ status: 401, wwwAuthenticate: undefined })).toBe(false);
    await writeFile(path, 'key-two-rotated\n');
    expect(await auth.onRejected({ status: 401, wwwAuthenticate: undefined })).toBe(true);
    expect((await auth.credentials()).headers).toEqual({ 'X-API-Key': 'key-two-rotated' });
    // A scope refusal is not about which key was sent.
    expect(await auth.onRejected({ status: 403, wwwAuthenticate: 'Bearer error="insufficient_scope"' })).toBe(false);
  });
});
