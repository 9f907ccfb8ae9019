#!/usr/bin/env bash
# npm run bench [-- --runs N | --quick | --profile | --peers all|none|kea,unbound]: natd vs dnsmasq (DHCP, DNS, memory),
# Kea (DHCP) and Unbound (DNS) when installed, and natd's nftables timings,
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
# the peers are optional: the run skips one that is missing (and RESULTS.md says so)
for peer in kea-dhcp4:kea-dhcp4-server unbound:unbound; do
  command -v "${peer%%:*}" >/dev/null || PATH="$PATH:/usr/sbin" command -v "${peer%%:*}" >/dev/null ||
    echo "bench: ${peer%%:*} is not installed, that peer is skipped (apt-get install ${peer#*:})" >&2
done
# issue 17: the name router is compared with HAProxy (skipped with a note when it is missing)
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null ||
  echo "bench: haproxy is not installed, the name router runs without it (apt-get install haproxy)" >&2

npm run --silent build
npx tsc -p bench/tsconfig.json
left=$((600 - SECONDS - 5))
# the run's own budget leaves room for writing the report; timeout is the backstop
exec timeout --signal=TERM --kill-after=15 "$left" node build/bench/run.js --budget-s "$((left - 45))" "$@"
