#!/usr/bin/env bash
# Makes sure redis-server is installed (Debian's redis-server package, installed with apt-get
# when missing and running as root) and prints its path. Used by the study tests, which start
# a private server on a free loopback port, and by `cargo xtask bench workers --storage redis`.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  command -v redis-server
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "redis-server.sh: installing redis-server from Debian" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >&2
  # The package starts a system service; the tests start their own servers.
  (service redis-server stop || true) >/dev/null 2>&1
  command -v redis-server
  exit 0
fi
echo "redis-server.sh: redis-server is missing, and not root to install it (apt-get install redis-server)" >&2
exit 1
