import type { Logger } from 'pino';
import type { AccessSettings } from '../config/schema.js';
import type { AccessRepository, NewGrant, NewToolRule } from '../store/access-repository.js';
import { accessFor, rulesFromSettings, type Access, type AccessRules, type Grant, type ToolRule } from './access-policy.js';
import type { Principal } from './principal.js';

export class AccessRuleError extends Error {
  constructor(
    readonly status: 404 | 503,
    message: string,
  ) {
    super(message);
    this.name = 'AccessRuleError';
  }
}

/**
 * The access rules in force: those of the config plus those stored in the database, reloaded
 * after every change made here and every `refreshSeconds` (changes made by other replicas).
 */
export class AccessControl {
  private readonly configRules: AccessRules;
  private stored: AccessRules = { grants: [], toolRules: [] };
  private timer: NodeJS.Timeout | undefined;
  /** Bumped whenever the rules change, so cached per-principal views can tell they are stale. */
  version = 0;

  constructor(
    private readonly settings: AccessSettings,
    private readonly repository: AccessRepository | undefined,
    private readonly logger: Logger,
  ) {
    this.configRules = rulesFromSettings(settings);
  }

  async start(): Promise<void> {
    await this.reload();
    if (this.repository) {
      this.timer = setInterval(() => void this.reload().catch((error: unknown) => this.logger.warn({ err: error }, 'could not reload access rules')), this.settings.refreshSeconds * 1000);
      this.timer.unref();
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }

  accessFor(principal: Principal): Access {
    return accessFor(principal, this.rules(), this.settings);
  }

  rules(): AccessRules {
    return { grants: [...this.configRules.grants, ...this.stored.grants], toolRules: [...this.configRules.toolRules, ...this.stored.toolRules] };
  }

  async addGrant(grant: NewGrant): Promise<Grant> {
    const added = await this.store().addGrant(grant);
    await this.reload();
    return added;
  }

  async addToolRule(rule: NewToolRule): Promise<ToolRule> {
    const added = await this.store().addToolRule(rule);
    await this.reload();
    return added;
  }

  async removeGrant(id: string): Promise<void> {
    if (!(await this.store().removeGrant(storedId(id)))) throw new AccessRuleError(404, `no stored grant with id ${id}`);
    await this.reload();
  }

  async removeToolRule(id: string): Promise<void> {
    if (!(await this.store().removeToolRule(storedId(id)))) throw new AccessRuleError(404, `no stored tool rule with id ${id}`);
    await this.reload();
  }

  private store(): AccessRepository {
    if (!this.repository) throw new AccessRuleError(503, 'access rules can be changed only with a database; without one, set them in the config');
    return this.repository;
  }

  private async reload(): Promise<void> {
    if (!this.repository) return;
    const [grants, toolRules] = await Promise.all([this.repository.grants(), this.repository.toolRules()]);
    const before = JSON.stringify(this.stored);
    this.stored = { grants, toolRules };
    if (JSON.stringify(this.stored) !== before) this.version++;
  }
}

function storedId(id: string): number {
  const n = Number(id);
  if (!Number.isSafeInteger(n) || n <= 0) throw new AccessRuleError(404, `"${id}" is not the id of a stored rule (rules from the config are changed in the config)`);
  return n;
}
