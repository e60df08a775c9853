#!/usr/bin/env bash
# Install the system packages the test suite and the demo need (Debian bookworm, as root).
# Idempotent: does nothing when everything is already there.
set -euo pipefail

need=()
[ -x /usr/bin/redis-server ] || need+=(redis-server)
command -v openssl >/dev/null || need+=(openssl)
command -v make >/dev/null || need+=(make)
command -v git >/dev/null || need+=(git)
command -v shellcheck >/dev/null || need+=(shellcheck)  # ansible-test sanity checks the shell scripts with it
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)

backports=/etc/apt/sources.list.d/kvtools-backports.sources
if [ ! -x /usr/bin/valkey-server ] && [ ! -f "$backports" ]; then
  # Reuse the machine's own Debian mirror (never hard-code one): copy the first URIs line.
  uris=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [ -z "$uris" ] && [ -f /etc/apt/sources.list ]; then
    uris=$(awk '/^deb / && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  if [ -z "$uris" ]; then
    echo "install-system: cannot find the Debian mirror in the apt sources" >&2
    exit 1
  fi
  cat > "$backports" <<SRC
Types: deb
URIs: $uris
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

if [ ${#need[@]} -gt 0 ] || [ ! -x /usr/bin/valkey-server ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  if [ ${#need[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${need[@]}"
  fi
  if [ ! -x /usr/bin/valkey-server ]; then
    apt-get install -y -qq --no-install-recommends -t bookworm-backports valkey-server
  fi
fi

# The packages may start system services on the default port; the tests run their own instances.
# Stop those services by the PID in their pidfile (never by process name).
for svc in redis-server valkey-server; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
  pidfile=/run/${svc%-server}/$svc.pid
  if [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$svc" ]; then
      kill "$pid" || true
    fi
  fi
done
/usr/bin/redis-server --version
/usr/bin/valkey-server --version
