import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeys } from '../../src/auth/api-keys.js';
import { ApiKeyRepository } from '../../src/store/api-key-repository.js';
import type { OpenedDatabase } from '../../src/store/database.js';
import { freshPglite } from '../helpers/databases.js';
import { bearer, hs256Token, initializeRequest, JWT_SECRET, openStream } from '../helpers/auth.js';
import { startGateway, testConfig, type RunningGateway } from '../helpers/gateway.js';

/** Whichever comes first: the stream's end, or `ms` of waiting (the answer then is 'open'). */
function within(ended: Promise<'ended'>, ms: number): Promise<'ended' | 'open'> {
  return Promise.race([ended, new Promise<'open'>((r) => setTimeout(() => r('open'), ms).unref())]);
}

describe('an open stream ends with the credential that opened it', () => {
  let database: OpenedDatabase;
  let gateway: RunningGateway;

  beforeAll(async () => {
    database = await freshPglite().open();
    gateway = await startGateway(testConfig({}, { auth: { apiKeys: true, jwt: { secret: JWT_SECRET, clockToleranceSeconds: 0 } }, access: { defaultLevel: 'call' } }), { database });
  });
  afterAll(async () => {
    await gateway?.stop();
    await database?.close();
  });

  it('a key revoked through the gateway ends its streams at once; other keys keep theirs', async () => {
    const keys = gateway.conflux.apiKeys!;
    const revoked = await keys.create({ name: 'revoked-here', subject: 'bot-a', groups: [] });
    const kept = await keys.create({ name: 'kept', subject: 'bot-b', groups: [] });
    const doomed = await openStream(gateway.url, { 'x-api-key': revoked.key });
    const survivor = await openStream(gateway.url, { 'x-api-key': kept.key });
    try {
      expect(await within(doomed.ended, 300)).toBe('open');
      await keys.revoke('revoked-here');
      expect(await doomed.ended).toBe('ended');
      expect(await within(survivor.ended, 300)).toBe('open');
      // The key no longer opens anything.
      expect((await initializeRequest(gateway.url, { 'x-api-key': revoked.key })).status).toBe(401);
    } finally {
      await doomed.cancel();
      await survivor.cancel();
    }
  });

  it('a key revoked elsewhere (the CLI, another replica) ends its streams at the next check', async () => {
    const created = await gateway.conflux.apiKeys!.create({ name: 'revoked-elsewhere', subject: 'bot-c', groups: [] });
    const stream = await openStream(gateway.url, bearer(created.key));
    try {
      // Another process's view of the same database: its revocation is not announced here.
      await new ApiKeys(new ApiKeyRepository(database.db)).revoke('revoked-elsewhere');
      expect(await stream.ended).toBe('ended');
    } finally {
      await stream.cancel();
    }
  });

  it('an expired token ends its stream', async () => {
    const token = await hs256Token({ sub: 'short-lived' }, { expiresIn: '5s' });
    const stream = await openStream(gateway.url, bearer(token));
    try {
      expect(await stream.ended).toBe('ended');
      expect((await initializeRequest(gateway.url, bearer(token))).status).toBe(401);
    } finally {
      await stream.cancel();
    }
  });
});
