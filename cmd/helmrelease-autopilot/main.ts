// Entry point: parse flags, connect to the API server, serve health and metrics, run the roles,
// and shut down cleanly on SIGTERM/SIGINT.
import { collectDefaultMetrics, Registry } from 'prom-client';
import { type Config, ConfigError, HelpRequested, parseConfig } from '../../src/config.ts';
import { KubeClient } from '../../src/kube/client.ts';
import { loadKubeConfig, readInClusterNamespace } from '../../src/kube/kubeconfig.ts';
import { createLogger } from '../../src/log.ts';
import { errorMessage } from '../../src/util/errors.ts';
import { startOpsServer } from './ops-server.ts';
import { startRoles } from './roles.ts';

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let config: Config;
  try {
    config = parseConfig(argv, env, { inClusterNamespace: () => readInClusterNamespace() });
  } catch (err) {
    if (err instanceof HelpRequested) {
      process.stdout.write(`${err.message}\n`);
      return 0;
    }
    if (err instanceof ConfigError) {
      process.stderr.write(`helmrelease-autopilot: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const log = createLogger(config['log-level']);
  const kube = await loadKubeConfig({ path: config.kubeconfig, context: config.context }, env);
  const client = await KubeClient.create(kube.kubeConfig);
  const version = (await client.get('/version')) as { gitVersion?: string };
  log.info(
    { kubeconfig: kube.source, server: client.server.origin, kubernetes: version.gitVersion },
    'connected',
  );

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  let exitCode = 0;
  let requestExit: (why: string) => void = () => {};
  const stopRequested = new Promise<string>((resolve) => {
    requestExit = resolve;
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const exit = (code: number, why: string) => {
    exitCode = code;
    requestExit(why);
  };
  const roles = await startRoles({ config, client, log, registry, instance: env.HOSTNAME, exit });
  const health = await startOpsServer({
    host: config['bind-address'],
    port: config['health-port'],
    health: { checks: () => roles.checks },
    ...(config['metrics-port'] === config['health-port'] ? { registry } : {}),
  });
  const metrics =
    config['metrics-port'] > 0 && config['metrics-port'] !== config['health-port']
      ? await startOpsServer({ host: config['bind-address'], port: config['metrics-port'], registry })
      : undefined;
  log.info(
    {
      healthPort: health.port,
      metricsPort: metrics?.port,
      webhook: config.webhook,
      reconciler: config.reconciler,
    },
    'started',
  );

  const why = await stopRequested;
  log.info({ why }, 'shutting down');
  const deadline = setTimeout(() => {
    log.error({ timeoutMs: config['shutdown-timeout'] }, 'shutdown took too long: exiting');
    process.exit(1);
  }, config['shutdown-timeout']);
  deadline.unref();
  await roles.stop();
  await Promise.all([health.close(), metrics?.close()]);
  client.close();
  clearTimeout(deadline);
  log.info({ exitCode }, 'stopped');
  return exitCode;
}

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`helmrelease-autopilot: ${errorMessage(err)}\n`);
    process.exit(1);
  },
);
