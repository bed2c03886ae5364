#!/usr/bin/env bash
# Makes sure a headless Chromium is installed (Debian's chromium-headless-shell, installed with
# apt-get when missing and running as root) and prints the command that runs it. Used by
# `cargo xtask report --screenshot` checks in the tests.
set -euo pipefail
for b in chromium-headless-shell chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then
    echo "$b"
    exit 0
  fi
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "chromium.sh: installing chromium-headless-shell from Debian" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium-headless-shell fonts-dejavu-core >&2
  echo chromium-headless-shell
  exit 0
fi
echo "chromium.sh: no headless Chromium, and not root to install one (apt-get install chromium-headless-shell)" >&2
exit 1
