#!/usr/bin/env bash
# npm run bench [-- --runs N | --quick | --profile]: natd vs dnsmasq (DHCP, DNS, memory) and natd's nftables timings,
# in network namespaces of its own (needs root). Builds first, then runs inside a hard 10-minute bound; the benchmark
# deletes its namespaces, processes and temp dirs on exit, on failure and on SIGINT/SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "bench: needs root (it creates network namespaces)" >&2
  exit 1
fi
for tool in ip nft dnsmasq dnsperf ping; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 1; }
done

npm run --silent build
npx tsc -p bench/tsconfig.json
left=$((600 - SECONDS - 5))
# the run's own budget leaves room for writing the report; timeout is the backstop
exec timeout --signal=TERM --kill-after=15 "$left" node build/bench/run.js --budget-s "$((left - 45))" "$@"
