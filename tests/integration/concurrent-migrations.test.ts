import { describe, expect, it } from 'vitest';
import { freshPostgres, postgresAvailable } from '../helpers/databases.js';

const postgres = await postgresAvailable();

describe.skipIf(!postgres)('migrations of replicas starting together', () => {
  it('succeed on every replica, one after another, and leave one copy of each table', async () => {
    const database = await freshPostgres();
    const replicas = await Promise.all([1, 2, 3, 4].map(() => database.open()));
    try {
      const outcomes = await Promise.allSettled(replicas.map((replica) => replica.migrate()));
      expect(outcomes.map((o) => (o.status === 'rejected' ? String(o.reason) : o.status))).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
      // Each migration applied once: the journal has no duplicates.
      const journal = (await replicas[0]!.db.execute('select hash from drizzle.__drizzle_migrations')) as unknown as { hash: string }[];
      expect(new Set(journal.map((row) => row.hash)).size).toBe(journal.length);
      expect(journal.length).toBeGreaterThan(0);
    } finally {
      await Promise.all(replicas.map((replica) => replica.close()));
      await database.dispose();
    }
  });
});
