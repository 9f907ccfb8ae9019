#!/usr/bin/env bash
# Installs what natd and its tests need on Debian: system packages (as root, only when something is missing),
# npm dependencies (npm ci, which also builds the native addon with node-gyp), then the TypeScript build.
set -euo pipefail
cd "$(dirname "$0")/.."

# tool -> Debian package
declare -A PACKAGES=(
  [nft]=nftables [ip]=iproute2 [busybox]=busybox [dhclient]=isc-dhcp-client [dhcpcd]=dhcpcd-base
  [dig]=dnsutils [tcpdump]=tcpdump [dnsmasq]=dnsmasq-base [dnsperf]=dnsperf [ping]=iputils-ping
  [nc]=netcat-openbsd [socat]=socat [ethtool]=ethtool [make]=make [g++]=g++ [python3]=python3 [systemd-analyze]=systemd
  [qemu-system-x86_64]=qemu-system-x86 [scapy]=python3-scapy [man]=man-db [named]=bind9
  [tftp]=tftp-hpa [atftp]=atftp [curl]=curl [rdisc6]=ndisc6 [openssl]=openssl [haproxy]=haproxy
)
missing=()
for tool in "${!PACKAGES[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ] || missing+=("${PACKAGES[$tool]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages (${missing[*]}); run as root to install them" >&2
  else
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
   || [ ! -f native/build/Release/natd_native.node ]; then
  npm ci --no-audit --no-fund
fi
# rebuild only when a source changed since the last build (a rebuild under running tests would swap dist/ under them)
stamp=dist/.build-stamp
if [ ! -f "$stamp" ] || [ -n "$(find src bench tsconfig.json package-lock.json -newer "$stamp" -print -quit)" ]; then
  npm run --silent build
  touch "$stamp"
fi
