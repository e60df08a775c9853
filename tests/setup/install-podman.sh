#!/usr/bin/env bash
# Install what the molecule/podman scenario needs on top of `make setup` (Debian bookworm, as root), idempotently:
#   apt   podman (4.3), runc (the runtime molecule/podman/files/containers.conf selects), debootstrap (the base image)
#   pip   molecule-plugins[podman] into the project venv (the podman driver; it pulls in no other package)
# The scenario's own create.yml / destroy.yml drive podman through its command line, so the containers.podman
# collection (which Ansible Galaxy would serve) is not needed.  `make molecule-podman` runs this script first.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${KV_VENV:-$root/.venv}

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-podman: run as root, or install these Debian packages first: ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "install-podman: no venv at $venv; run tests/setup/install-python.sh (make setup) first" >&2
  exit 1
fi
if ! "$venv/bin/python" -c 'import molecule_plugins.podman' 2>/dev/null; then
  "$venv/bin/python" -m pip install -q 'molecule-plugins[podman]>=25.1,<27'
fi
podman --version
"$venv/bin/python" -c 'from importlib.metadata import version; print("molecule-plugins", version("molecule-plugins"))'
