/**
 * The optional Prometheus endpoint on TCP (the control socket always serves `natd metrics`). Loopback unless the
 * operator opted in (config.ts), and natd's input chain keeps guests away from it either way.
 */
import http from 'node:http';
import type { MetricsListen } from '../config.js';
import type { Logger } from '../log.js';
import { PROMETHEUS_CONTENT_TYPE } from './metrics.js';

export interface MetricsListener {
  close(): Promise<void>;
}

/** Serves `render()` at /metrics on `listen`; resolves once listening. */
export async function startMetricsListener(listen: MetricsListen, render: () => string, logger: Logger): Promise<MetricsListener> {
  const server = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE }).end(render());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  logger.info('metrics served', { url: `http://${listen.text}/metrics` });
  return { close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
