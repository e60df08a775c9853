#!/usr/bin/env python
"""Start or stop the scenario's source (Redis 7.0) and target (Valkey 8.0) as local processes.

    servers.py start WORKDIR   pick free loopback ports, write configs with ACL users, start both servers
                               (daemonized, pid files in WORKDIR), load sample data into dbs 0, 3 and 9 of the
                               source, write WORKDIR/endpoints.json (kv_source, kv_target, source_keys; mode 0600)
    servers.py stop WORKDIR    stop whatever the pid files name; safe to run when nothing was started
    servers.py writer WORKDIR  start the application: a detached process writing app:<n> = n to db 5 of the source
                               (about 200 writes/s) and logging every acknowledged write (WORKDIR/writer.log). After
                               a write that waited for the migration's pause, it repeats that write on the target -
                               the app switched over - and stops.
    servers.py check WORKDIR   every write the application saw acknowledged before the pause is on the target

Needs redis-server and valkey-server on PATH (Debian: apt install redis-server valkey-server) and the redis
Python package (the collection's own requirement).  Override the binaries with KV_SOURCE_BIN / KV_TARGET_BIN.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time

import redis

SIDES = {
    'source': os.environ.get('KV_SOURCE_BIN', 'redis-server'),
    'target': os.environ.get('KV_TARGET_BIN', 'valkey-server'),
}


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def start(work):
    os.makedirs(work, exist_ok=True)
    endpoints = {}
    for side, binary in SIDES.items():
        folder = os.path.join(work, side)
        os.makedirs(folder, exist_ok=True)
        port = free_port()
        admin_pw, migrator_pw = secrets.token_hex(12), 'mig-' + secrets.token_hex(12)
        conf = os.path.join(folder, 'server.conf')
        with open(conf, 'w') as fh:
            fh.write('\n'.join([
                'bind 127.0.0.1', 'port %d' % port, 'daemonize yes', 'dir %s' % folder,
                'pidfile %s' % os.path.join(folder, 'server.pid'), 'logfile %s' % os.path.join(folder, 'server.log'),
                'save ""', 'appendonly no', 'databases 16',
                'user default off',
                'user admin on >%s ~* &* +@all' % admin_pw,
                'user migrator on >%s ~* &* +@all -@dangerous +restore +migrate +info +config|get +sync +psync '
                '+replconf +client|pause +client|unpause +client|list +acl|whoami +acl|dryrun +acl|getuser' % migrator_pw,
            ]) + '\n')
        os.chmod(conf, 0o600)
        fd = os.open(os.path.join(folder, 'admin.pw'), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as fh:
            fh.write(admin_pw)
        subprocess.run([binary, conf], check=True)
        client = redis.Redis(host='127.0.0.1', port=port, username='admin', password=admin_pw)
        deadline = time.time() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        endpoints[side] = dict(port=port, admin=admin_pw, migrator=migrator_pw)
    src = endpoints['source']
    keys = load(src['port'], src['admin'])
    out = dict(source_keys=keys)
    for side in SIDES:
        out['kv_' + side] = dict(host='127.0.0.1', port=endpoints[side]['port'], username='migrator',
                                 password=endpoints[side]['migrator'])
    path = os.path.join(work, 'endpoints.json')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as fh:
        json.dump(out, fh)
    print('source on 127.0.0.1:%d, target on 127.0.0.1:%d, %d keys loaded'
          % (endpoints['source']['port'], endpoints['target']['port'], keys))


def load(port, password):
    total = 0
    names = [b'', b'line\nbreak', b'with space', b'"quoted" \'both\'', b'tab\there', b'star*', b'\xff\xfe not utf-8']
    for db in (0, 3, 9):
        client = redis.Redis(host='127.0.0.1', port=port, username='admin', password=password, db=db)
        pipe = client.pipeline(transaction=False)
        for n, name in enumerate(names):
            pipe.set(b'db%d:' % db + name, b'value %d' % n)
        for n in range(500):
            pipe.set(b'key:%d' % n, b'v' * (n % 50), px=3600 * 1000 if n % 10 == 0 else None)
        pipe.hset(b'hash', mapping={b'a': b'1', b'\xff': b''})
        pipe.rpush(b'list', b'x', b'', b'x')
        pipe.sadd(b'set', b'm', b'n')
        pipe.zadd(b'zset', {b'a': 0.1, b'b': -2})
        pipe.xadd(b'stream', {b'f': b'v'}, id=b'1-1')
        pipe.execute()
        total += client.dbsize()
    return total


APP_DB = 5


def _clients(work, side_user):
    with open(os.path.join(work, 'endpoints.json')) as fh:
        endpoints = json.load(fh)
    out = {}
    for side, user in side_user:
        ep = endpoints['kv_' + side]
        if user == 'admin':
            with open(os.path.join(work, side, 'admin.pw')) as fh:
                password = fh.read().strip()
        else:
            password = ep['password']
        out[side] = redis.Redis(host=ep['host'], port=ep['port'], username=user, password=password, db=APP_DB)
    return out


BLOCKED = 0.1  # a write that waited this long (seconds) met the migration's pause


def _following(work):
    """Whether the verification rounds are over: the pause comes next (before, a slow write is a slow machine)."""
    folder = os.path.join(work, 'work')
    return os.path.isdir(folder) and any(n.startswith('kv-verify-rounds-') for n in os.listdir(folder))


def _cut_over(work):
    """Whether kv_sync's follower was drained (the cut-over happened): a pause shorter than BLOCKED goes unnoticed."""
    folder = os.path.join(work, 'work')
    for name in os.listdir(folder):
        if name.startswith('kv-sync-') and name.endswith('.json'):
            try:
                with open(os.path.join(folder, name)) as fh:
                    if json.load(fh).get('state') == 'stopped':
                        return True
            except (OSError, ValueError):
                pass
    return False


def writer(work):
    if os.fork():
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    with open(os.path.join(work, 'writer.pid'), 'w') as fh:
        fh.write(str(os.getpid()))
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    clients = _clients(work, (('source', 'admin'), ('target', 'migrator')))
    log = open(os.path.join(work, 'writer.log'), 'a')
    n = 0
    try:
        while n < 200000:
            sent = time.time()
            clients['source'].set(b'app:%d' % n, b'%d' % n)
            acked = time.time()
            log.write('%d %.6f %.6f\n' % (n, sent, acked))
            log.flush()
            if _following(work) and (acked - sent >= BLOCKED or _cut_over(work)):
                # the write waited for the pause: the app now works with the target and repeats it there
                clients['target'].set(b'app:%d' % n, b'%d' % n)
                log.write('switched %d\n' % n)
                break
            n += 1
            time.sleep(max(0, 0.005 - (time.time() - sent)))
    finally:
        log.close()
        os._exit(0)


def check(work):
    """The writes acknowledged before the one that waited for the pause (sent before the pause began) are on the
    target."""
    entries, switched = [], None
    with open(os.path.join(work, 'writer.log')) as fh:
        for line in fh:
            parts = line.split()
            if parts[0] == 'switched':
                switched = int(parts[1])
            elif len(parts) == 3:
                entries.append((int(parts[0]), float(parts[1]), float(parts[2])))
    if switched is None:
        sys.exit('the application never switched to the target')
    began = [sent for n, sent, acked in entries if n == switched][0]
    try:  # the pause as the migration measured it (the app's switch can come after a pause shorter than BLOCKED)
        with open(os.path.join(work, 'first-report.json')) as fh:
            began = min(began, float(json.load(fh).get('writes_paused_from') or began))
    except (OSError, ValueError, TypeError):
        pass
    acked = [n for n, sent, done in entries if done < began]
    if len(acked) < 50:
        sys.exit('the application wrote only %d times before the pause' % len(acked))
    target = _clients(work, (('target', 'migrator'),))['target']
    lost = []
    for i in range(0, len(acked), 500):
        part = acked[i:i + 500]
        for n, value in zip(part, target.mget([b'app:%d' % k for k in part])):
            if value != b'%d' % n:
                lost.append(n)
    if lost:
        sys.exit('%d acknowledged writes are not on the target, e.g. %r' % (len(lost), lost[:5]))
    print('all %d writes acknowledged before the pause are on the target' % len(acked))


def stop(work):
    pidfile = os.path.join(work, 'writer.pid')
    if os.path.exists(pidfile):
        with open(pidfile) as fh:
            pid = int(fh.read().strip() or 0)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        os.unlink(pidfile)
    for side in SIDES:
        pidfile = os.path.join(work, side, 'server.pid')
        if not os.path.exists(pidfile):
            continue
        with open(pidfile) as fh:
            pid = int(fh.read().strip() or 0)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        for dummy in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
        if os.path.exists(pidfile):  # the server removes it itself on a clean shutdown
            os.unlink(pidfile)
        print('stopped the %s (pid %d)' % (side, pid))


if __name__ == '__main__':
    if len(sys.argv) != 3 or sys.argv[1] not in ('start', 'stop', 'writer', 'check'):
        sys.exit(__doc__)
    dict(start=start, stop=stop, writer=writer, check=check)[sys.argv[1]](sys.argv[2])
