import type { Logger } from 'pino';
import type { AccessSettings } from '../config/schema.js';
import { ConfluxError, kindOfStatus, type ErrorKind } from '../errors.js';
import type { AccessRepository, NewGrant, NewToolRule } from '../store/access-repository.js';
import { accessFor, rulesFromSettings, type Access, type AccessRules, type Grant, type ToolRule } from './access-policy.js';
import type { Principal } from './principal.js';

/** A stored rule that does not exist (404), or a change to stored rules without a database (503). */
export class AccessRuleError extends ConfluxError {
  readonly kind: ErrorKind;
  override readonly code: 'no_database' | undefined;

  constructor(
    readonly status: 404 | 503,
    message: string,
  ) {
    super(message);
    this.name = 'AccessRuleError';
    this.kind = kindOfStatus(status);
    this.code = status === 503 ? 'no_database' : undefined;
  }
}

/**
 * The access rules in force: those of the config plus those stored in the database, reloaded
 * after every change made here, when another replica announces one (`reload`), and every
 * `refreshSeconds` (an announcement lost, or a change made by the CLI).
 */
export class AccessControl {
  private readonly configRules: AccessRules;
  private stored: AccessRules = { grants: [], toolRules: [] };
  private timer: NodeJS.Timeout | undefined;
  private readonly changeListeners = new Set<() => void>();
  /** Reloads may overlap (a timer, an announcement, a change here): the one started last wins. */
  private reloadsStarted = 0;
  private reloadApplied = 0;
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

  /**
   * Calls `listener` after each stored rule added or removed through this instance, once the
   * database took it, so other replicas can be told. Reloads are not reported. Returns the
   * unsubscribe function.
   */
  onChanged(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  accessFor(principal: Principal): Access {
    return accessFor(principal, this.rules(), this.settings);
  }

  rules(): AccessRules {
    return { grants: [...this.configRules.grants, ...this.stored.grants], toolRules: [...this.configRules.toolRules, ...this.stored.toolRules] };
  }

  async addGrant(grant: NewGrant): Promise<Grant> {
    const added = await this.store().addGrant(grant);
    this.changed();
    await this.reload();
    return added;
  }

  async addToolRule(rule: NewToolRule): Promise<ToolRule> {
    const added = await this.store().addToolRule(rule);
    this.changed();
    await this.reload();
    return added;
  }

  async removeGrant(id: string): Promise<void> {
    if (!(await this.store().removeGrant(storedId(id)))) throw new AccessRuleError(404, `no stored grant with id ${id}`);
    this.changed();
    await this.reload();
  }

  async removeToolRule(id: string): Promise<void> {
    if (!(await this.store().removeToolRule(storedId(id)))) throw new AccessRuleError(404, `no stored tool rule with id ${id}`);
    this.changed();
    await this.reload();
  }

  private store(): AccessRepository {
    if (!this.repository) throw new AccessRuleError(503, 'access rules can be changed only with a database; without one, set them in the config');
    return this.repository;
  }

  private changed(): void {
    for (const listener of this.changeListeners) {
      try {
        listener();
      } catch (error) {
        // The rule is stored: a listener's fault must not turn the change into an error for whoever made it.
        this.logger.warn({ err: error }, 'an access rule change listener failed');
      }
    }
  }

  /** Reads the stored rules again (another replica changed them); reports nothing. */
  async reload(): Promise<void> {
    if (!this.repository) return;
    const started = ++this.reloadsStarted;
    const [grants, toolRules] = await Promise.all([this.repository.grants(), this.repository.toolRules()]);
    if (started < this.reloadApplied) return;
    this.reloadApplied = started;
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
