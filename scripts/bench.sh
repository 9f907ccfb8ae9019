#!/usr/bin/env bash
# npm run bench [-- --runs N | --quick | --profile | --peers all|none|kea,unbound | --no-install]: natd vs dnsmasq (DHCP,
# DNS, memory), Kea (DHCP) and Unbound (DNS), and natd's nftables timings (missing peers are installed with apt-get
# on Debian as root, their services kept from running, unless --no-install),
# in network namespaces of its own (needs root). Builds first, then runs inside a hard 10-minute bound; the benchmark
# deletes its namespaces, processes and temp dirs on exit, on failure and on SIGINT/SIGTERM.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "bench: needs root (it creates network namespaces)" >&2
  exit 1
fi

# issue 18: the peers (and the bench's own tools) are installed with apt-get when missing, on Debian, as root, unless
# --no-install is given. tool:package; dnsmasq-base rather than dnsmasq: the binary without a system service that would
# take port 53 (the bench runs its own dnsmasq by PID, as it runs Kea, Unbound and HAProxy).
BENCH_PACKAGES="dnsmasq:dnsmasq-base dnsperf:dnsperf kea-dhcp4:kea-dhcp4-server unbound:unbound haproxy:haproxy"
install=1
args=()
for arg in "$@"; do
  if [ "$arg" = --no-install ]; then install=0; else args+=("$arg"); fi
done
set -- ${args[@]+"${args[@]}"}
has_tool() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
missing=()
for entry in $BENCH_PACKAGES; do has_tool "${entry%%:*}" || missing+=("${entry#*:}"); done
if [ ${#missing[@]} -gt 0 ] && [ "$install" = 1 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; then
  echo "bench: installing ${missing[*]} (apt-get; --no-install skips this)" >&2
  # Their services must not run beside the bench: invoke-rc.d does not start them during the install (a policy-rc.d
  # of our own, only when the system has none: a container's own one already says "do not start"), and afterwards
  # the units these packages ship are disabled and stopped, only for the packages installed here and now.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# natd bench: no service starts while it installs its peers (removed right after)\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  status=0
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } || status=$?
  [ "$own_policy" = 1 ] && rm -f "$policy"
  if [ "$status" != 0 ]; then
    echo "bench: apt-get install ${missing[*]} failed (status $status); the run skips the peers that are missing" >&2
  elif [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    for pkg in "${missing[@]}"; do
      for unit in $(dpkg-query -L "$pkg" 2>/dev/null | sed -n 's#^/\(usr/\)\{0,1\}lib/systemd/system/\([^/]*\.service\)$#\2#p'); do
        if systemctl is-enabled --quiet "$unit" 2>/dev/null || systemctl is-active --quiet "$unit" 2>/dev/null; then
          echo "bench: disabling $unit (installed just now by the bench; it starts its own $pkg by PID)" >&2
          systemctl disable --now --quiet "$unit" || echo "bench: could not disable $unit" >&2
        fi
      done
    done
  fi
elif [ ${#missing[@]} -gt 0 ]; then
  echo "bench: not installing ${missing[*]} ($([ "$install" = 0 ] && echo "--no-install" || echo "not Debian with apt-get"))" >&2
fi

for tool in ip nft dnsmasq dnsperf ping; do
  has_tool "$tool" || { echo "bench: $tool is not installed" >&2; exit 1; }
done
# the peers are optional: the run skips one that is missing (and RESULTS.md says so)
for peer in kea-dhcp4:kea-dhcp4-server unbound:unbound; do
  has_tool "${peer%%:*}" || echo "bench: ${peer%%:*} is not installed, that peer is skipped (apt-get install ${peer#*:})" >&2
done
# issue 17: the name router is compared with HAProxy (skipped with a note when it is missing)
has_tool haproxy || echo "bench: haproxy is not installed, the name router runs without it (apt-get install haproxy)" >&2

npm run --silent build
npx tsc -p bench/tsconfig.json
left=$((600 - SECONDS - 5))
# the run's own budget leaves room for writing the report; timeout is the backstop
exec timeout --signal=TERM --kill-after=15 "$left" node build/bench/run.js --budget-s "$((left - 45))" "$@"
