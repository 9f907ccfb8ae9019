#!/usr/bin/env node
/**
 * issue 17: natd's NameRouter engine (dist/src/router/name-router.js) alone in a process, with a fixed name → address
 * table and no daemon around it. Not what the router bench reports (that runs the real `natd --expose`): it is for
 * telling the engine's cost from the daemon's, and for trying the load generator before the daemon has the router.
 * `npm run bench -- --scenario router --router-engine` adds it as a third router.
 *
 *   node build/bench/lib/router-engine.js --listen 198.51.100.1:443 --route a.bench.test=10.77.0.11:443 [--route …]
 */
import { parseArgs } from 'node:util';
import { createLogger } from '../../src/log.js';
import { NameRouter, type RouteTarget } from '../../src/router/name-router.js';

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { listen: { type: 'string' }, route: { type: 'string', multiple: true } } });
  if (!values.listen || !values.route?.length) throw new Error('router-engine: --listen ADDR:PORT and --route NAME=ADDR:PORT are required');
  const i = values.listen.lastIndexOf(':');
  const address = values.listen.slice(0, i);
  const port = Number(values.listen.slice(i + 1));
  const routes = new Map<string, RouteTarget>();
  for (const spec of values.route) {
    const [name, target] = spec.split('=') as [string, string];
    const j = target.lastIndexOf(':');
    routes.set(name.toLowerCase(), { address: target.slice(0, j), port: Number(target.slice(j + 1)), route: name });
  }
  const router = new NameRouter({
    logger: createLogger({ level: 'warn' }),
    limits: { maxConnections: 100_000, maxConnectionsPerClient: 100_000, headTimeoutMs: 10_000, idleTimeoutMs: 60_000, maxHeadBytes: 16_384, connectTimeoutMs: 5000 },
    lookup: (name) => (name === undefined ? undefined : routes.get(name)),
  });
  await router.listen([{ port, address }]);
  process.stdout.write(`router-engine listening on ${address}:${port}\n`);
  const stop = (): void => {
    void router.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`router-engine: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
