#!/usr/bin/env bash
# Set up .venv with the project installed. `--test` adds the test tools and Debian's Chromium.
# The local CPU wheel of torch goes in first: a bare `torch` could pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
with_tests=false
[ "${1:-}" = "--test" ] && with_tests=true

if $with_tests && [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
  else
    echo "setup: the browser tests need Debian's chromium at /usr/bin/chromium" >&2
  fi
fi

# The wiki tests run a real MediaWiki (Debian's package, SQLite, served by `php -S`).
if $with_tests && { [ ! -f /usr/share/mediawiki/maintenance/install.php ] || ! php -m 2>/dev/null | grep -qi pdo_sqlite; }; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mediawiki php-sqlite3
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mediawiki php-sqlite3
  else
    echo "setup: the wiki tests need Debian's mediawiki and php-sqlite3 packages" >&2
  fi
fi

# The sign-in tests put the app behind Debian's nginx (run on loopback with its own config).
if $with_tests && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx
  elif command -v sudo >/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx
  else
    echo "setup: the sign-in tests need Debian's nginx package" >&2
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==2.13.0"
if $with_tests; then
  .venv/bin/python -m pip install -q -e ".[test]"
else
  .venv/bin/python -m pip install -q -e .
fi
echo "setup: done (.venv)"
