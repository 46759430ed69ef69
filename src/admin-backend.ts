import type { AccessControl } from './auth/access-control.js';
import type { AccessRules, Grant, ToolRule } from './auth/access-policy.js';
import type { ApiKeys, CreatedApiKey } from './auth/api-keys.js';
import type { NewGrant, NewToolRule } from './store/access-repository.js';

export type ApiKeyRecord = CreatedApiKey['record'];

export interface NewApiKey {
  name: string;
  subject?: string | undefined;
  groups?: readonly string[] | undefined;
  expiresAt?: Date | undefined;
}

/**
 * What the `keys` and `access` commands change: the database itself, or the running gateway
 * that holds the embedded database (through its admin API).
 */
export interface AdminBackend {
  createKey(key: NewApiKey): Promise<CreatedApiKey>;
  listKeys(): Promise<ApiKeyRecord[]>;
  /** The revoked key, or undefined when no active key has that id or name. */
  revokeKey(idOrName: string): Promise<ApiKeyRecord | undefined>;
  rules(): Promise<AccessRules>;
  addGrant(grant: NewGrant): Promise<Grant>;
  addToolRule(rule: NewToolRule): Promise<ToolRule>;
  removeGrant(id: string): Promise<void>;
  removeToolRule(id: string): Promise<void>;
}

/** The backend over an opened database. */
export function directAdmin(keys: ApiKeys, control: AccessControl): AdminBackend {
  return {
    createKey: (key) => keys.create(key),
    listKeys: () => keys.list(),
    revokeKey: (idOrName) => keys.revoke(idOrName),
    rules: async () => control.rules(),
    addGrant: (grant) => control.addGrant(grant),
    addToolRule: (rule) => control.addToolRule(rule),
    removeGrant: (id) => control.removeGrant(id),
    removeToolRule: (id) => control.removeToolRule(id),
  };
}
