#!/usr/bin/env bash
# Run `ansible-test sanity` on the collection, with no ignore file.
#
# ansible-test wants the collection at .../ansible_collections/<namespace>/<name>, so the
# git-tracked files (as they are in the working tree) are copied to
# .build/sanity.XXXXXX/ansible_collections/kvtools/migration (a folder per run, removed at the end) and
# the tests run there.  Untracked files
# are left out on purpose: what is not committed is not checked.
#
# ansible-test keeps its per-test virtual environments under ~/.ansible/test; HOME points into
# .build/ for this run so that they stay with the project (`make clean` removes them).
# Extra arguments go to ansible-test, e.g. `tests/setup/sanity.sh --test pylint`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${KV_VENV:-$root/.venv}
build=$root/.build
# a folder per run, so that two runs at once do not delete each other's copy
mkdir -p "$build"
run_dir=$(mktemp -d "$build/sanity.XXXXXX")
trap 'rm -rf "$run_dir"' EXIT
dest=$run_dir/ansible_collections/kvtools/migration
mkdir -p "$dest"
cd "$root"
git ls-files -z | while IFS= read -r -d '' f; do
  if [ -f "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
done | tar --null -T - -cf - | tar -xf - -C "$dest"
# ansible-test lists the files through git; the copy sits inside this repository's ignored .build/,
# so give it a repository of its own (no commit needed: it lists untracked files too).
git -C "$dest" init -q

export HOME=$build/ansible-test-home
# ansible-test bootstraps pip in its venvs with a get-pip.py it downloads from a host that is not
# reachable here; put our stand-in where it caches that script (the name carries the pip version).
pip_version=$("$venv/bin/python" -c '
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="3.11"))["pip"])')
cache=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
mkdir -p "$(dirname "$cache")"
cp "$root/tests/setup/get_pip_shim.py" "$cache"

cd "$dest"
"$venv/bin/ansible-test" sanity --python 3.11 --color no "$@"
