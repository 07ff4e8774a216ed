#!/usr/bin/env bash
# Makes Debian's chromium available for the browser tests (puppeteer-core drives
# it; no browser is ever downloaded by npm):
#   scripts/chromium.sh ensure   install the chromium package if it is missing
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

case "${1:-ensure}" in
  ensure)
    if ! command -v chromium >/dev/null; then
      echo "chromium.sh: installing chromium"
      as_root apt-get update -qq
      DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
    fi
    ;;
  *) echo "usage: $0 ensure" >&2; exit 2 ;;
esac
