import { spawn, spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEnvironment } from '../../src/config/env.js';
import { loadConfigFile, parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { workersRefused } from '../../src/workers.js';
import { freshPostgres, postgresAvailable, type TestDatabase } from '../helpers/databases.js';
import { ROOT, startGateway, type RunningGateway } from '../helpers/gateway.js';
import {
  composeInterpolate,
  dockerIgnored,
  dockerIgnorePatterns,
  dockerStages,
  execForm,
  mergeValues,
  renderChart,
  renderedObjects,
  stageEnv,
  systemdUnit,
  type DockerStage,
} from '../helpers/deploy-parsers.js';

/*
 * The files under deploy/ are checked here because no Docker engine, cluster or init system
 * runs the tests: each file is parsed, the config it ships is loaded through the gateway's own
 * loader with the environment the file gives it, and the gateway is started with that config.
 * Linters found on the machine (yamllint, helm, systemd-analyze) run too.
 */

const DEPLOY = join(ROOT, 'deploy');
const CHART = join(DEPLOY, 'helm/conflux');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const hasPostgres = await postgresAvailable();

function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

/** The environment a config is read with, as the CLI does: host and port from it over the file's. */
function listenAddress(config: Config, env: Record<string, string>): { host: string; port: number } {
  const fromEnv = readEnvironment(env);
  return { host: fromEnv.host ?? config.gateway.host, port: Number(fromEnv.port ?? config.gateway.port) };
}

// ---------------------------------------------------------------- the image

const stages = dockerStages(read('deploy/Dockerfile'));
const runtime = stages.at(-1)!;
const imageEnv = stageEnv(runtime);
const instructions = (stage: DockerStage, name: string) => stage.instructions.filter((i) => i.name === name);
const exposed = instructions(runtime, 'EXPOSE').map((i) => Number(i.args.split('/')[0]));

describe('deploy/Dockerfile', () => {
  it('builds dist/ in a stage of its own and runs it, as npm start does, from a final stage on Node 20', () => {
    const pkg = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe('node dist/cli.js serve');
    const build = stages.find((s) => instructions(s, 'RUN').some((i) => i.args.includes('npm run build')));
    expect(build).toBeDefined();
    expect(build).not.toBe(runtime);
    expect(instructions(runtime, 'COPY').some((i) => i.args.startsWith(`--from=${build!.name} `) && / \/src\/dist \.\/dist$/.test(i.args))).toBe(true);
    for (const stage of stages) expect(stage.image).toMatch(/^node:20[.-]/);
    const command = [...execForm(instructions(runtime, 'ENTRYPOINT')[0]!.args), ...execForm(instructions(runtime, 'CMD')[0]!.args)];
    expect(command.slice(-3)).toEqual(['node', 'dist/cli.js', 'serve']);
    // database.ts finds the migrations at ../../drizzle from dist/store.
    expect(instructions(runtime, 'WORKDIR').at(-1)!.args).toBe('/app');
    expect(instructions(runtime, 'COPY').some((i) => i.args === 'drizzle ./drizzle')).toBe(true);
  });

  it('carries only production dependencies: npm ci --omit=dev in the stage the final one copies node_modules from', () => {
    const copy = instructions(runtime, 'COPY').find((i) => i.args.includes('node_modules'))!;
    const from = /^--from=(\S+)/.exec(copy.args)![1];
    const deps = stages.find((s) => s.name === from)!;
    expect(instructions(deps, 'RUN').some((i) => /npm ci\b.*--omit=dev/.test(i.args))).toBe(true);
    // No install in the final stage itself, where build tools would stay behind.
    expect(instructions(runtime, 'RUN').some((i) => /npm (ci|install)/.test(i.args))).toBe(false);
  });

  it('runs as a non-root numeric user, listens on 0.0.0.0 at the port it exposes, and checks /health', () => {
    const user = instructions(runtime, 'USER').at(-1)!.args;
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(Number(user.split(':')[0])).toBeGreaterThan(0);
    expect(imageEnv.CONFLUX_HOST).toBe('0.0.0.0');
    expect(exposed).toEqual([Number(imageEnv.CONFLUX_PORT)]);
    const healthcheck = instructions(runtime, 'HEALTHCHECK')[0]!.args;
    expect(healthcheck).toContain('/health');
    expect(healthcheck).toMatch(/CONFLUX_PORT/);
  });

  it('copies only what .dockerignore lets into the context, which keeps local state and secrets out', () => {
    const patterns = dockerIgnorePatterns(read('.dockerignore'));
    const sources = stages
      .flatMap((s) => instructions(s, 'COPY'))
      .filter((i) => !i.args.startsWith('--from='))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(statSync(join(ROOT, source)), source).toBeTruthy();
      expect(dockerIgnored(patterns, source), source).toBe(false);
    }
    for (const secret of ['node_modules', 'dist', '.git', '.env', '.env.production', '.conflux', '.conflux/pgdata', 'test-results', 'deploy/helm']) {
      expect(dockerIgnored(patterns, secret), secret).toBe(true);
    }
  });
});

// ---------------------------------------------------------------- Compose

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
  stop_grace_period?: string;
  networks?: Record<string, { ipv4_address?: string }>;
}

const rawCompose = parseYaml(read('deploy/docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService> };
const rawNetworks = (parseYaml(read('deploy/docker-compose.yml'), { merge: true }) as { networks?: Record<string, { ipam?: { config?: { subnet: string }[] } }> }).networks;
/** The services as Compose reads them with these variables in the operator's shell (or .env). */
const composeServices = (shell: Record<string, string> = {}) => composeInterpolate(rawCompose, shell).services;
const services = composeServices();
const gatewayNames = Object.keys(services).filter((name) => services[name]!.build?.dockerfile === 'deploy/Dockerfile' && services[name]!.command === undefined);
const gateways = gatewayNames.map((name) => services[name]!);
const nginxConf = read('deploy/nginx.conf');

/** Where a path inside a Compose container comes from on this side (its bind mount). */
function mountedFrom(service: ComposeService, containerPath: string): string {
  const mount = service.volumes?.map((v) => v.split(':')).find(([, target]) => target === containerPath);
  if (!mount) throw new Error(`${containerPath} is not mounted`);
  return join(DEPLOY, mount[0]!);
}

async function composeGatewayConfig(name: string, shell: Record<string, string> = {}): Promise<{ config: Config; env: Record<string, string> }> {
  const service = composeServices(shell)[name]!;
  const env = { ...imageEnv, ...service.environment };
  return { config: await loadConfigFile(mountedFrom(service, env.CONFLUX_CONFIG!), env), env };
}

function seconds(duration: string): number {
  const match = /^(\d+)(s|m)$/.exec(duration);
  if (!match) throw new Error(`unexpected duration ${duration}`);
  return Number(match[1]) * (match[2] === 'm' ? 60 : 1);
}

describe('deploy/docker-compose.yml', () => {
  it('runs two replicas of one image, with PostgreSQL and Redis they share', async () => {
    const replicas = gateways.reduce((n, g) => n + (g.deploy?.replicas ?? 1), 0);
    expect(replicas).toBe(2);
    expect(new Set(gateways.map((g) => g.image)).size).toBe(1);
    for (const gateway of gateways) expect(resolve(DEPLOY, gateway.build!.context)).toBe(ROOT);
    const postgres = Object.entries(services).find(([, s]) => s.image?.startsWith('postgres:'))!;
    const redis = Object.entries(services).find(([, s]) => s.image?.startsWith('redis:'))!;
    for (const gateway of gateways) {
      const env = readEnvironment({ ...imageEnv, ...gateway.environment });
      expect(new URL(env.databaseUrl!).hostname).toBe(postgres[0]);
      expect(new URL(env.redisUrl!).hostname).toBe(redis[0]);
      // What two workers of one process need, two replicas need too.
      expect(workersRefused(2, env)).toBeUndefined();
      expect(gateway.depends_on?.migrate?.condition).toBe('service_completed_successfully');
    }
    expect(services.migrate!.command).toEqual(['migrate']);
    expect(services.migrate!.depends_on?.[postgres[0]]?.condition).toBe('service_healthy');
  });

  it('gives the replicas a valid config that listens on 0.0.0.0 with allowedHosts, and time to finish calls on stop', async () => {
    for (const name of gatewayNames) {
      const gateway = services[name]!;
      const { config, env } = await composeGatewayConfig(name);
      const address = listenAddress(config, env);
      expect(address.host).toBe('0.0.0.0');
      expect(address.port).toBe(exposed[0]);
      expect(config.gateway.allowedHosts).toEqual(['localhost']);
      expect(config.gateway.auth).not.toBe('none');
      // Only the load balancer is trusted for X-Forwarded-For, so the throttle counts each client.
      const lb = Object.values(services).find((s) => s.image?.startsWith('nginx:'))!;
      expect(config.gateway.trustedProxies).toEqual([lb.networks!.default!.ipv4_address]);
      const subnet = composeInterpolate(rawNetworks!.default!.ipam!.config![0]!.subnet, {});
      expect(lb.networks!.default!.ipv4_address!.startsWith(subnet.replace(/0\/24$/, ''))).toBe(true);
      expect(config.gateway.rateLimit.failedAuthPerAddress).toBeGreaterThan(0);
      expect(seconds(gateway.stop_grace_period!)).toBeGreaterThan(config.gateway.shutdownGraceSeconds);
    }
  });

  it('balances round robin over exactly those replicas, without stickiness, passing event streams through', async () => {
    const upstream = /upstream\s+(\S+)\s*\{([^}]*)\}/.exec(nginxConf)!;
    const servers = [...upstream[2]!.matchAll(/^\s*server\s+([^\s;]+)/gm)].map((m) => m[1]!);
    const { config, env } = await composeGatewayConfig(gatewayNames[0]!);
    expect(servers.sort()).toEqual(gatewayNames.map((name) => `${name}:${listenAddress(config, env).port}`).sort());
    expect(nginxConf).toContain(`proxy_pass http://${upstream[1]};`);
    expect(nginxConf).not.toMatch(/^\s*(ip_hash|hash|sticky)\b/m);
    expect(nginxConf).toMatch(/proxy_buffering off;/);
    expect(nginxConf).toMatch(/proxy_set_header Host \$http_host;/);
    expect(nginxConf).toMatch(/proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;/);
    const bodyLimit = /client_max_body_size (\d+)m;/.exec(nginxConf)!;
    expect(Number(bodyLimit[1]) * 1024 * 1024).toBeGreaterThanOrEqual(config.gateway.maxBodyBytes);
    const lb = Object.values(services).find((s) => s.image?.startsWith('nginx:'))!;
    expect(mountedFrom(lb, '/etc/nginx/nginx.conf')).toBe(join(DEPLOY, 'nginx.conf'));
  });
});

// ---------------------------------------------------------------- the gateway, started with the shipped config

describe.skipIf(!hasPostgres)('the shipped config, served', () => {
  let database: TestDatabase;
  let gateway: RunningGateway;
  let port: number;

  beforeAll(async () => {
    const { config } = await composeGatewayConfig(gatewayNames[0]!, { CONFLUX_PUBLIC_HOST: 'mcp.example.com' });
    expect(config.gateway.allowedHosts).toEqual(['mcp.example.com']);
    database = await freshPostgres();
    const opened = await database.open();
    await opened.migrate();
    // On loopback rather than 0.0.0.0: with allowedHosts set, the Host guard judges alike.
    gateway = await startGateway(config, { database: opened });
    port = Number(new URL(gateway.url).port);
  });

  afterAll(async () => {
    await gateway?.stop();
    await database?.dispose();
  });

  const get = (path: string, host: string) =>
    new Promise<{ status: number; body: string }>((done, fail) => {
      const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => done({ status: res.statusCode!, body }));
      });
      req.on('error', fail);
      req.end();
    });

  it('answers the probes with their Host header, and refuses the pod address a kubelet would send by default', async () => {
    const health = await get('/health', 'localhost');
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({ status: 'ok', servers: { everything: { state: 'ready' } } });
    expect(await get('/ready', 'localhost')).toMatchObject({ status: 200 });
    expect((await get('/health', 'mcp.example.com')).status).toBe(200);
    expect((await get('/health', 'mcp.example.com:443')).status).toBe(200);
    expect((await get('/health', '10.1.2.3:8000')).status).toBe(403);
    expect((await get('/health', 'evil.example')).status).toBe(403);
  });

  it("passes the image's own HEALTHCHECK command", async () => {
    const command = execForm(instructions(runtime, 'HEALTHCHECK')[0]!.args.replace(/^.*?CMD\s+/, ''));
    expect(command[0]).toBe('node');
    // Asynchronously: the gateway answering it runs in this process.
    const exitCode = (confluxPort: string) =>
      new Promise<number | null>((done, fail) => {
        const child = spawn(process.execPath, command.slice(1), { env: { ...process.env, CONFLUX_PORT: confluxPort }, stdio: 'ignore' });
        child.on('error', fail);
        child.on('exit', done);
      });
    expect(await exitCode(String(port))).toBe(0);
    expect(await exitCode('1')).toBe(1);
  });
});

// ---------------------------------------------------------------- Helm

const chartValues = parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
const TEST_SECRETS = { secrets: { databaseUrl: 'postgres://conflux:pw@postgres:5432/conflux', redisUrl: 'redis://redis:6379' } };

function render(overrides: unknown = TEST_SECRETS): Record<string, unknown>[] {
  return renderedObjects(renderChart(CHART, mergeValues(chartValues, overrides)));
}

// Rendered manifests are walked by their well-known paths.
type K8s = Record<string, any>;
const byKind = (objects: Record<string, unknown>[], kind: string) => objects.filter((o) => o.kind === kind) as K8s[];

describe('deploy/helm/conflux', () => {
  let objects: Record<string, unknown>[];
  let deployment: K8s, pod: K8s, container: K8s, configMap: K8s, secret: K8s;
  beforeAll(() => {
    objects = render();
    deployment = byKind(objects, 'Deployment')[0]!;
    pod = deployment.spec.template;
    container = pod.spec.containers[0];
    configMap = byKind(objects, 'ConfigMap')[0]!;
    secret = byKind(objects, 'Secret')[0]!;
  });

  it('renders a Deployment, Service, HorizontalPodAutoscaler, ConfigMap, Secret and PodDisruptionBudget', () => {
    expect(objects.map((o) => `${String(o.apiVersion)} ${String(o.kind)}`).sort()).toEqual([
      'apps/v1 Deployment',
      'autoscaling/v2 HorizontalPodAutoscaler',
      'policy/v1 PodDisruptionBudget',
      'v1 ConfigMap',
      'v1 Secret',
      'v1 Service',
    ]);
  });

  it('probes /health for liveness and /ready for readiness, with a Host the gateway accepts, on the port it listens on', () => {
    const port = container.ports.find((p: K8s) => p.name === 'http');
    for (const [probe, path] of [['startupProbe', '/health'], ['livenessProbe', '/health'], ['readinessProbe', '/ready']] as const) {
      expect(container[probe].httpGet).toEqual({ path, port: 'http', httpHeaders: [{ name: 'Host', value: 'localhost' }] });
    }
    const env = Object.fromEntries(container.env.map((e: K8s) => [e.name, e.value]));
    expect(Number(env.CONFLUX_PORT)).toBe(port.containerPort);
  });

  it('mounts a config that loads, listens on 0.0.0.0 with allowedHosts, and reads its secrets from the Secret', () => {
    const env: Record<string, string> = { ...imageEnv, ...Object.fromEntries(container.env.map((e: K8s) => [e.name, String(e.value)])), ...secret.stringData };
    const mount = container.volumeMounts.find((m: K8s) => m.mountPath === dirname(env.CONFLUX_CONFIG!));
    const volume = pod.spec.volumes.find((v: K8s) => v.name === mount.name);
    expect(volume.configMap.name).toBe(configMap.metadata.name);
    const fileName = env.CONFLUX_CONFIG!.slice(mount.mountPath.length + 1);
    const config = parseConfig(configMap.data[fileName], { source: 'ConfigMap', env });
    const address = listenAddress(config, env);
    expect(address.host).toBe('0.0.0.0');
    expect(address.port).toBe(container.ports[0].containerPort);
    expect(config.gateway.allowedHosts.length).toBeGreaterThan(0);
    // No address of the cluster's is known here: the throttle stays off until trustedProxies is set.
    expect(config.gateway.trustedProxies).toEqual([]);
    expect(config.gateway.rateLimit.failedAuthPerAddress).toBe(0);
    expect(container.envFrom).toEqual([{ secretRef: { name: secret.metadata.name } }]);
    expect(workersRefused(2, readEnvironment(env))).toBeUndefined();
    // Stopping: the preStop pause, then the gateway's own grace period, within Kubernetes' limit.
    expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThan(Number(container.lifecycle.preStop.exec.command[1]) + config.gateway.shutdownGraceSeconds);
  });

  it('runs non-root on a read-only root file system, and points the Service, HPA and PDB at its pods', () => {
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    const labels = pod.metadata.labels;
    const service = byKind(objects, 'Service')[0]!;
    expect(labels).toMatchObject(service.spec.selector);
    expect(service.spec.sessionAffinity).toBe('None');
    expect(service.spec.ports[0].targetPort).toBe('http');
    const pdb = byKind(objects, 'PodDisruptionBudget')[0]!;
    expect(labels).toMatchObject(pdb.spec.selector.matchLabels);
    expect(deployment.spec.selector.matchLabels).toEqual(pdb.spec.selector.matchLabels);
    const hpa = byKind(objects, 'HorizontalPodAutoscaler')[0]!;
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    // The HPA owns the replica count; a fixed one would fight it.
    expect(deployment.spec.replicas).toBeUndefined();
  });

  it('refuses to render without DATABASE_URL and REDIS_URL, unless a Secret of the operator is named', () => {
    expect(() => render({ secrets: { redisUrl: 'redis://r:6379' } })).toThrow(/secrets.databaseUrl is required/);
    expect(() => render({ secrets: { databaseUrl: 'postgres://p/c' } })).toThrow(/secrets.redisUrl is required/);
    const own = render({ secrets: { existingSecret: 'conflux-env' }, autoscaling: { enabled: false } });
    expect(byKind(own, 'Secret')).toEqual([]);
    expect(byKind(own, 'HorizontalPodAutoscaler')).toEqual([]);
    const ownDeployment = byKind(own, 'Deployment')[0]!;
    expect(ownDeployment.spec.replicas).toBe(2);
    expect(ownDeployment.spec.template.spec.containers[0].envFrom).toEqual([{ secretRef: { name: 'conflux-env' } }]);
  });

  it('rolls the pods when the config changes', () => {
    const changed = render(mergeValues(TEST_SECRETS, { config: { gateway: { shutdownGraceSeconds: 5 } } }));
    const checksum = (o: Record<string, unknown>[]) => byKind(o, 'Deployment')[0]!.spec.template.metadata.annotations['checksum/config'];
    expect(checksum(objects)).toMatch(/^[0-9a-f]{64}$/);
    expect(checksum(changed)).not.toBe(checksum(objects));
  });
});

// ---------------------------------------------------------------- systemd

describe('deploy/systemd/conflux.service', () => {
  const unit = systemdUnit(read('deploy/systemd/conflux.service'));
  const service = unit.get('Service')!;
  const one = (key: string) => service.get(key)?.at(-1);

  it('is hardened: its own user, a read-only system, a state directory, restarts on failure, secrets from a file', () => {
    expect(one('DynamicUser') === 'yes' || (one('User') !== undefined && one('User') !== 'root')).toBe(true);
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('StateDirectory')).toBe('conflux');
    expect(one('Restart')).toBe('on-failure');
    expect(one('EnvironmentFile')).toMatch(/^\/etc\/conflux\//);
    for (const key of ['NoNewPrivileges', 'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'ProtectControlGroups', 'RestrictSUIDSGID', 'LockPersonality']) {
      expect(one(key), key).toBe('yes');
    }
    expect(one('CapabilityBoundingSet')).toBe('');
    // V8 writes machine code at run time: this one would stop Node.
    expect(one('MemoryDenyWriteExecute')).not.toBe('yes');
  });

  it('runs the built CLI and gives the gateway time to finish calls on stop', async () => {
    expect(one('ExecStart')).toMatch(/\/node \/opt\/conflux\/dist\/cli\.js serve$/);
    const configPath = service.get('Environment')!.map((e) => /^CONFLUX_CONFIG=(.+)$/.exec(e)?.[1]).find(Boolean);
    expect(configPath).toBe('/etc/conflux/mcp-servers.yaml');
    // Only the gateway gets SIGTERM: it ends its upstream processes after the calls in flight.
    expect(one('KillMode')).toBe('mixed');
    const { config } = await composeGatewayConfig(gatewayNames[0]!);
    expect(Number(/^(\d+)s$/.exec(one('TimeoutStopSec')!)![1])).toBeGreaterThan(config.gateway.shutdownGraceSeconds);
  });
});

// ---------------------------------------------------------------- every YAML file, and the linters this machine has

describe('YAML under deploy/', () => {
  const yamlFiles = (function walk(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : []));
  })(DEPLOY).filter((f) => !f.includes('/templates/'));

  it('parses, every document of every file', () => {
    expect(yamlFiles.map((f) => relative(DEPLOY, f)).sort()).toEqual(
      expect.arrayContaining(['docker-compose.yml', 'mcp-servers.yaml', 'helm/conflux/Chart.yaml', 'helm/conflux/values.yaml']),
    );
    for (const file of yamlFiles) {
      for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) expect(doc.errors, file).toEqual([]);
    }
  });
});

describe('linters on this machine', () => {
  // Each runs where it is installed (yamllint and systemd from Debian; helm where an operator has it).
  if (onPath('yamllint')) {
    it('yamllint --strict passes', () => {
      const run = spawnSync('yamllint', ['-c', 'deploy/.yamllint', '--strict', 'deploy'], { cwd: ROOT, encoding: 'utf8' });
      expect(run.stdout + run.stderr).toBe('');
      expect(run.status).toBe(0);
    });
  }

  if (onPath('systemd-analyze')) {
    it('systemd-analyze verifies the unit and rates its exposure low', () => {
      const dir = mkdtempSync(join(tmpdir(), 'conflux-unit-'));
      try {
        // The unit names /usr/bin/node, which must exist for verify; here, the running Node.
        const file = join(dir, 'conflux.service');
        writeFileSync(file, read('deploy/systemd/conflux.service').replace('/usr/bin/node', process.execPath));
        const verify = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
        expect(verify.stderr.split('\n').filter((l) => l.includes('conflux.service'))).toEqual([]);
        expect(verify.status).toBe(0);
        const security = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', file], { encoding: 'utf8' });
        const exposure = /Overall exposure level for conflux\.service: ([\d.]+)/.exec(security.stdout);
        expect(exposure, security.stderr).not.toBeNull();
        expect(Number(exposure![1])).toBeLessThanOrEqual(2);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  if (onPath('helm')) {
    it('helm lint passes, and helm template renders what the tests render', () => {
      const dir = mkdtempSync(join(tmpdir(), 'conflux-chart-'));
      try {
        const values = join(dir, 'values.yaml');
        writeFileSync(values, stringify(TEST_SECRETS));
        const lint = spawnSync('helm', ['lint', '--strict', CHART, '-f', values], { encoding: 'utf8' });
        expect(lint.status, lint.stdout + lint.stderr).toBe(0);
        const template = spawnSync('helm', ['template', 'conflux-test', CHART, '-f', values], { encoding: 'utf8' });
        expect(template.status, template.stderr).toBe(0);
        // The checksum hashes toYaml's text, which Helm's YAML writer and ours lay out differently.
        const comparable = (objects: Record<string, unknown>[]) =>
          objects
            .map((o) => {
              const copy = structuredClone(o) as K8s;
              if (copy.kind === 'Deployment') delete copy.spec.template.metadata.annotations['checksum/config'];
              if (copy.kind === 'ConfigMap') copy.data = Object.fromEntries(Object.entries(copy.data as Record<string, string>).map(([k, v]) => [k, parseYaml(v)]));
              return copy;
            })
            .sort((a, b) => String(a.kind).localeCompare(String(b.kind)));
        const helmObjects = parseAllDocuments(template.stdout).map((d) => d.toJS() as Record<string, unknown> | null).filter((o): o is Record<string, unknown> => o !== null);
        expect(comparable(render())).toEqual(comparable(helmObjects));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
