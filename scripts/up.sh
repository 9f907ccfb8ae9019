#!/usr/bin/env bash
# Brings natd up on a bridge with the built-in defaults (bridge virbr10, created if missing, subnet 10.10.0.1/24),
# after installing what it needs. Extra arguments go to natd, e.g. `npm run up -- --bridge virbr20 --domain vm`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "natd configures a bridge, nftables and ports 53/67: run as root (sudo npm run up)" >&2
  exit 1
fi
bash scripts/setup.sh
args=("$@")
case " ${args[*]-} " in
  *" --bridge "*) ;;
  *) args=(--bridge virbr10 "${args[@]}") ;;
esac
exec node dist/src/cli.js "${args[@]}"
