// issue 18: the JavaScript of a DNS cache hit, in process, without sockets: 100 cached names, HITS queries through
// the server's UDP handler (a fake transport), CPU µs per hit, min of ROUNDS. Usage: node bench/hit-js.mjs [DIST...]
// (each DIST a build's dist/ directory, measured in turns; default ./dist).
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const HITS = 1_000_000;
const ROUNDS = 4;
const dists = process.argv.slice(2).length ? process.argv.slice(2) : ['dist'];

async function load(dist) {
  const at = (p) => import(pathToFileURL(path.resolve(dist, p)).href);
  const [{ DnsServer }, { DnsCache }, { LocalNames }, { parseCidr, parseIpv4 }, { silentLogger }] = await Promise.all([
    at('src/dns/server.js'), at('src/dns/cache.js'), at('src/dns/local-names.js'), at('src/net/ipv4.js'), at('src/log.js'),
  ]);
  const subnet = parseCidr('10.9.0.1/24').subnet;
  const localNames = new LocalNames({ domain: 'vm.test', subnet, gatewayAddress: parseIpv4('10.9.0.1') });
  const cache = new DnsCache({ maxEntries: 10_000 });
  let handlers;
  let sent = 0;
  const udp = { start: (h) => { handlers = h; }, reply: () => { sent++; }, close: async () => {} };
  const upstream = { query: async (raw) => answer(raw) };
  const server = new DnsServer({ udp, subnet, localNames, cache, upstream, domain: 'vm.test', logger: silentLogger });
  server.start();
  const queries = Array.from({ length: 100 }, (_, i) => query(`h${i}.bench.test`, i));
  for (const q of queries) handlers.message(q, parseIpv4('10.9.0.20'), 40000);
  await new Promise((r) => setTimeout(r, 50));
  const client = parseIpv4('10.9.0.20');
  return () => {
    const slot = Buffer.alloc(2048);
    const before = process.cpuUsage();
    for (let i = 0; i < HITS; i++) {
      const q = queries[i % 100];
      q.copy(slot);
      slot[0] = i & 0xff;
      // as the batch transport delivers: in place when the build's handlers take that (issue 18), else a view
      if (handlers.messageAt) handlers.messageAt(slot, 0, q.length, client, 40000);
      else handlers.message(slot.subarray(0, q.length), client, 40000);
    }
    const used = process.cpuUsage(before);
    return (used.user + used.system) / HITS;
  };
}

function query(name, id) {
  const labels = name.split('.').flatMap((l) => [l.length, ...Buffer.from(l)]);
  // header, question, an OPT (1232, as dnsperf sends with -D? no: dnsperf sends EDNS by default)
  return Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1, ...labels, 0, 0, 1, 0, 1, 0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
}

function answer(raw) {
  const q = Buffer.from(raw);
  const qEnd = q.indexOf(0, 12) + 5;
  const head = Buffer.from(q.subarray(0, 12));
  head.writeUInt16BE(0x8180, 2);
  head.writeUInt16BE(1, 6);
  head.writeUInt16BE(1, 10);
  const rr = Buffer.from([0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1]);
  const opt = Buffer.from([0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([head, q.subarray(12, qEnd), rr, opt]);
}

const runs = await Promise.all(dists.map(load));
const best = dists.map(() => Infinity);
for (let round = 0; round < ROUNDS; round++) {
  runs.forEach((run, i) => { best[i] = Math.min(best[i], run()); });
}
dists.forEach((d, i) => console.log(`${d}: ${best[i].toFixed(3)} µs CPU per hit (min of ${ROUNDS} x ${HITS})`));
