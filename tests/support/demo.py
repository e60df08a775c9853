# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""``make demo``: run playbooks/migrate.yml against a local source and target.

1. builds the collection and installs the tarball into ``.build/demo/collections``;
2. starts a source, Redis 7.0 (``/usr/bin/redis-server``) on plain TCP, and a target, Valkey 8.0
   (``/usr/bin/valkey-server``) on TLS only, both on free loopback ports with ACL users;
3. loads sample data into dbs 0, 1 and 5 of the source: every type, keys with TTLs and keys with
   awkward names (newline, space, quotes, tab, ``*``, bytes that are not UTF-8, the empty name);
4. writes the endpoints ``kv_source`` and ``kv_target`` to a private JSON file and runs
   ``ansible-playbook playbooks/migrate.yml -e @that-file`` three times: with ``--check`` (the plan;
   the target must stay empty), for real, and again (the second run must report no change);
5. compares every key, value and expiry of source and target (independently of the collection),
   prints the keys per db on both sides, checks that no password reached the output, and stops
   the servers (also when anything fails or the run is interrupted).

Arguments after ``--`` go to ansible-playbook, e.g. ``python tests/support/demo.py -- -v``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tests.support import ansible as kv_ansible  # noqa: E402  pylint: disable=wrong-import-position
from tests.support import certs as kv_certs  # noqa: E402  pylint: disable=wrong-import-position
from tests.support import compare as kv_compare  # noqa: E402  pylint: disable=wrong-import-position
from tests.support import servers as kv_servers  # noqa: E402  pylint: disable=wrong-import-position

DEMO_DIR = os.path.join(ROOT, '.build', 'demo')
PLAYBOOK = os.path.join(ROOT, 'playbooks', 'migrate.yml')
HOUR_MS = 3600 * 1000

# Key names a migration must carry over unchanged.
AWKWARD_NAMES = [
    b'',
    b'line\nbreak',
    b'with space',
    b'"double" and \'single\' quotes',
    b'tab\there',
    b'star*',
    b'\xff\xfe not UTF-8 \x80',
]


def say(text=''):
    print(text)
    sys.stdout.flush()


def load_sample_data(server):
    """Fill dbs 0, 1 and 5 of ``server``; returns ``{db: number of keys}``."""
    db0 = server.admin(0)
    pipe = db0.pipeline(transaction=False)
    for n, name in enumerate(AWKWARD_NAMES):
        pipe.set(name, b'value %d of an awkward key' % n)
    pipe.set(b'expiring:\nname with ttl', b'still here for an hour', px=HOUR_MS)
    pipe.hset(b'hash', mapping={b'field 1': b'one', b'field\t2': b'', b'\xff': b'\x00\x01'})
    pipe.rpush(b'list', b'a', b'b', b'', b'a')
    pipe.sadd(b'set', b'x', b'y', b'\xfe')
    pipe.zadd(b'zset', {b'low': -1.5, b'mid': 0, b'high': 1e10})
    pipe.xadd(b'stream', {b'event': b'created'}, id=b'1-1')
    pipe.xadd(b'stream', {b'event': b'updated'}, id=b'2-1')
    pipe.execute()

    db1 = server.admin(1)
    pipe = db1.pipeline(transaction=False)
    for n in range(200):
        pipe.hset(b'user:%d' % n, mapping={b'name': b'user %d' % n, b'plan': b'basic' if n % 3 else b'pro'})
        if n % 10 == 0:
            pipe.set(b'session:%d' % n, b'token-%d' % n, px=HOUR_MS + n)
    pipe.execute()

    db5 = server.admin(5)
    pipe = db5.pipeline(transaction=False)
    for n in range(50):
        pipe.incrby(b'counter:%d' % n, n)
    pipe.rpush(b'queue', *[b'job %d' % n for n in range(1000)])
    pipe.set(b'cache:* everything', b'glob characters in the name', ex=600)
    pipe.execute()
    return dict((db, server.admin(db).dbsize()) for db in (0, 1, 5))


def keys_per_db(server):
    """``{db: keys}`` from INFO keyspace (never KEYS)."""
    info = server.admin().info('keyspace')
    out = {}
    for name, value in info.items():
        name = name.decode() if isinstance(name, bytes) else name
        if name.startswith('db') and isinstance(value, dict):
            out[int(name[2:])] = int(value.get('keys', 0))
    return out


def install_collection(env):
    """Build the collection from this tree and install the tarball; returns the collections path."""
    bindir = os.path.dirname(sys.executable)
    dist = os.path.join(DEMO_DIR, 'dist')
    collections = os.path.join(DEMO_DIR, 'collections')
    shutil.rmtree(dist, ignore_errors=True)
    os.makedirs(dist)
    env = dict(env, ANSIBLE_COLLECTIONS_PATH=collections)
    subprocess.run([os.path.join(bindir, 'ansible-galaxy'), 'collection', 'build', '--force', '--output-path', dist,
                    ROOT], check=True, env=env, stdout=subprocess.DEVNULL)
    tarball = glob.glob(os.path.join(dist, 'kvtools-migration-*.tar.gz'))[0]
    subprocess.run([os.path.join(bindir, 'ansible-galaxy'), 'collection', 'install', '--force', '-p', collections,
                    tarball], check=True, env=env, stdout=subprocess.DEVNULL)
    say('collection: %s installed into %s' % (os.path.basename(tarball), os.path.relpath(collections, ROOT)))
    return collections


def run_playbook(extra_vars_file, collections, env, args):
    """Run playbooks/migrate.yml, streaming its output; returns (exit status, output)."""
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), PLAYBOOK, '-i', 'localhost,',
           '-e', '@' + extra_vars_file] + list(args)
    env = dict(env, ANSIBLE_COLLECTIONS_PATH=collections)
    say('$ ansible-playbook playbooks/migrate.yml -i localhost, -e @<endpoints file>%s'
        % ''.join(' ' + a for a in args))
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        sys.stdout.write(line)
        sys.stdout.flush()
    return proc.wait(), ''.join(lines)


def version_of(server):
    info = server.admin().info('server')
    version = info.get('valkey_version') or info.get('redis_version')
    return version.decode() if isinstance(version, bytes) else str(version)


def print_counts(source, target):
    src, tgt = keys_per_db(source), keys_per_db(target)
    say('keys per db after the playbook:')
    say('  %-4s %8s %8s' % ('db', 'source', 'target'))
    for db in sorted(set(src) | set(tgt)):
        say('  %-4d %8d %8d' % (db, src.get(db, 0), tgt.get(db, 0)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', 1)[0])
    parser.add_argument('playbook_args', nargs='*', help='extra ansible-playbook arguments (after --)')
    opts = parser.parse_args(argv)

    for flavour in ('redis70', 'valkey80'):
        if not kv_servers.available(flavour):
            say('demo: %s is missing: run `make setup` (tests/setup/install-system.sh)' % kv_servers.binary(flavour))
            return 2

    # SIGTERM (e.g. from a CI timeout) takes the same way out as Ctrl-C: through the finally below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    work = tempfile.mkdtemp(prefix='kv-demo-')
    started = []
    try:
        env = kv_ansible.ansible_env()
        collections = install_collection(env)

        certs = kv_certs.make_certs(os.path.join(work, 'certs'))
        source = kv_servers.Server('redis70', name='demo-source')
        started.append(source)
        source.start()
        target = kv_servers.Server('valkey80', tls=True, certs=certs, name='demo-target')
        started.append(target)
        target.start()
        say('source: Redis %s on 127.0.0.1:%d (plain TCP, ACL user migrator)' % (version_of(source), source.port))
        say('target: Valkey %s on 127.0.0.1:%d (TLS only, ACL user migrator)' % (version_of(target), target.port))

        loaded = load_sample_data(source)
        say('sample data: %s' % ', '.join('db%d: %d keys' % (db, n) for db, n in sorted(loaded.items())))
        say('  including keys named %s and keys with TTLs' % ', '.join(repr(n) for n in AWKWARD_NAMES))

        # The endpoints go to ansible-playbook in a file only this user can read, never on the command line.
        endpoints = {
            'kv_source': source.endpoint('migrator'),
            'kv_target': {
                'url': 'valkeys://127.0.0.1:%d' % target.port,
                'username': 'migrator',
                'password': kv_servers.PASSWORDS['migrator'],
                'ca_cert': certs['ca_cert'],
            },
            'kv_report_dir': os.path.join(DEMO_DIR, 'reports'),
            'kv_work_dir': work,
        }
        vars_file = os.path.join(work, 'endpoints.json')
        fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, 'w') as fh:
            json.dump(endpoints, fh)

        outputs = []
        for step, args in (('dry run', ['--check']), ('migration', []), ('second run', [])):
            say()
            say('== %s' % step)
            status, output = run_playbook(vars_file, collections, env, args + opts.playbook_args)
            outputs.append(output)
            if status != 0:
                say('demo: FAILED - ansible-playbook (%s) exited with status %d' % (step, status))
                return status
            if step == 'dry run' and keys_per_db(target):
                say('demo: FAILED - the dry run wrote to the target')
                return 1
            if step == 'second run' and not re.search(r'\bchanged=0\b', output):
                say('demo: FAILED - the second run reported a change')
                return 1
        say()
        print_counts(source, target)

        leaked = [user for user, pw in kv_servers.PASSWORDS.items() if any(pw in out for out in outputs)]
        if leaked:
            say('demo: FAILED - the password of %s appeared in the playbook output' % ', '.join(leaked))
            return 1
        diffs = []
        for db in sorted(loaded):
            diffs += ['db%d: %s' % (db, d) for d in kv_compare.differences(source.admin(db), target.admin(db))]
        if diffs:
            say('demo: FAILED - source and target differ:')
            for line in diffs[:20]:
                say('  ' + line)
            return 1
        say('demo: passed - every key, value and TTL of the source is on the target, the dry run wrote nothing,')
        say('      the second run changed nothing, and no password appeared in the output')
        say('      report: %s' % os.path.relpath(os.path.join(DEMO_DIR, 'reports', 'localhost-latest.md'), ROOT))
        return 0
    finally:
        for server in started:
            server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
        if started:
            say('demo: servers stopped')


if __name__ == '__main__':
    sys.exit(main())
