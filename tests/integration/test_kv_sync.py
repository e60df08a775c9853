"""kv_sync against real servers: a writer hammers the source during the snapshot and after; after
``CLIENT PAUSE WRITE`` and ``state: stopped`` the target must equal the source key by key (type, value,
exact expiry), by a comparison of this file (not kv_verify).

Every test stops its follower (state=absent or a kill) and unpauses the source, also on failure.
"""

import json
import os
import signal
import socket
import threading
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._preflight import preflight
from ansible_collections.kvtools.migration.plugins.module_utils._sync import Sync
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogWriter, iter_keys_log
from ansible_collections.kvtools.migration.plugins.module_utils._sync_keys import settle_expiries
from ansible_collections.kvtools.migration.plugins.module_utils._sync_parts import live_sync
from ansible_collections.kvtools.migration.plugins.module_utils._sync_stream import Applier
from ansible_collections.kvtools.migration.plugins.module_utils._wire import pack
from tests.conftest import assert_no_secret
from tests.support import compare
from tests.support import servers
from tests.support.servers import PASSWORDS

AWKWARD = [b'plain', b'with space', b'new\nline', b'quote"\'', b'star*?[x]', b'nul\x00byte', b'\xff\xfebin', b'']
SHORT_TTL_MS = 150


def pack_args(args):
    return pack([args])


# -- helpers -----------------------------------------------------------------------------------------

def fast_source(server, diskless=True):
    admin = server.admin()
    admin.config_set('repl-diskless-sync', 'yes' if diskless else 'no')
    try:
        admin.config_set('repl-diskless-sync-delay', 0)
    except Exception:
        pass
    admin.config_set('repl-backlog-size', 1 << 20)
    return admin


def preload(server, dbs, keys=3000, short=True):
    for db in dbs:
        c = server.admin(db)
        pipe = c.pipeline(transaction=False)
        for i in range(keys):
            pipe.set(b'pre:%d:%d' % (db, i), b'v' * 40)
            if i % 10 == 0:
                pipe.set(b'pre:ttl:%d:%d' % (db, i), b'x', px=60000 + i)
        for name in AWKWARD:
            pipe.hset(b'h:' + name, mapping={b'f': name or b'-', b'g': b'2'})
            pipe.rpush(b'l:' + name, b'a', b'b', name or b'-')
            pipe.zadd(b'z:' + name, {b'm1': 1.5, b'm2': -2})
            pipe.sadd(b's:' + name, b'1', b'2', b'x')
            pipe.xadd(b'x:' + name, {b'f': b'v'})
        if short:
            pipe.set(b'renew', b'r', px=SHORT_TTL_MS)
        pipe.execute()


SCRIPT = b"redis.call('INCR', KEYS[1]); redis.call('HSET', KEYS[2], 'n', ARGV[1]); return 1"


class Writer(threading.Thread):
    """Writes every kind of command the issue names to dbs ``dbs`` (plus FLUSHDB on ``flush_db``)."""

    def __init__(self, server, dbs, flush_db=None):
        super().__init__(daemon=True)
        self.clients = dict((db, server.admin(db)) for db in dbs)
        self.flush_client = server.admin(flush_db) if flush_db is not None else None
        self.stop = False
        self.ops = 0
        self.error = None

    def run(self):
        n = 0
        try:
            while not self.stop:
                for db, c in self.clients.items():
                    name = AWKWARD[n % len(AWKWARD)]
                    if not c.pexpire(b'renew', SHORT_TTL_MS):             # renewed all the time
                        c.set(b'renew', n, px=SHORT_TTL_MS)
                    c.set(b'str:' + name, b'%d' % n, ex=100)
                    c.set(b'px:%d' % (n % 50), b'%d' % n, px=200000)
                    c.set(b'self:%d' % (n % 40), b'gone soon', px=30)      # expire on their own
                    c.incr(b'ctr:' + name)
                    c.lpush(b'l:' + name, n)
                    c.ltrim(b'l:' + name, 0, 20)
                    c.hset(b'h:' + name, b'f%d' % (n % 30), n)
                    c.zincrby(b'z:' + name, 1.25, b'm%d' % (n % 10))
                    c.sadd(b's:' + name, n % 17)
                    c.srem(b's:' + name, (n + 5) % 17)
                    c.delete(b'pre:%d:%d' % (db, n % 3000))
                    c.expire(b'pre:%d:%d' % (db, (n + 1) % 3000), 300)
                    c.pexpire(b'str:' + name, 90000)
                    pipe = c.pipeline(transaction=True)
                    pipe.incr(b'tx:a')
                    pipe.incr(b'tx:b')
                    pipe.execute()
                    c.eval(SCRIPT, 2, b'ev:ctr', b'ev:h', n)
                    c.xadd(b'x:' + name, {b'n': b'%d' % n}, maxlen=30, approximate=False)
                    self.ops += 1
                if self.flush_client is not None:
                    self.flush_client.set(b'f:%d' % (n % 100), n)
                    if n % 60 == 59:
                        self.flush_client.flushdb()
                n += 1
        except Exception as exc:  # surfaced by the test
            if not self.stop:
                self.error = exc


def _values(client, keys):
    """``[(type, value)]`` for ``keys``, read with pipelines (type-aware, like tests/support/compare.py)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.type(key)
    types = [t.decode() for t in pipe.execute()]
    pipe = client.pipeline(transaction=False)
    readers = {'string': pipe.get, 'hash': pipe.hgetall, 'list': lambda k: pipe.lrange(k, 0, -1),
               'set': pipe.smembers, 'zset': lambda k: pipe.zrange(k, 0, -1, withscores=True), 'stream': pipe.xrange}
    for key, kind in zip(keys, types):
        readers.get(kind, pipe.exists)(key)
    values = pipe.execute()
    out = []
    for key, kind, value in zip(keys, types, values):
        if kind == 'zset':
            value = dict(value)
        elif kind == 'stream':
            groups = sorted((g['name'], g['last-delivered-id']) for g in client.xinfo_groups(key))
            value = (value, groups, client.xinfo_stream(key)['last-generated-id'])
        out.append((kind, value))
    return out


def state_of(server, db):
    """``{key: ((type, value), absolute expiry ms or -1)}`` of one db, and the keys expiring within 2 s."""
    client = server.admin(db)
    keys = sorted(compare._scan_all(client))
    now = time.time() * 1000
    pipe = client.pipeline(transaction=False)
    for key in keys:
        if server.version == '6.2':
            pipe.pttl(key)
        else:
            pipe.execute_command('PEXPIRETIME', key)
    times = pipe.execute()
    if server.version == '6.2':
        times = [t if t < 0 else int(now + t) for t in times]
    out = {}
    soon = set()
    for key, value, when in zip(keys, _values(client, keys), times):
        vanished = value[1] is None or (value[0] in ('hash', 'list', 'set', 'zset') and not value[1])
        if value[0] == 'none' or when == -2 or vanished:  # vanished: expired between the TYPE and the read
            continue
        if when >= 0 and when - now < 2000:
            soon.add(key)
        out[key] = (value, -1 if when < 0 else when)
    return out, soon


def assert_identical(source, target, pairs, ttl_tolerance_ms=0):
    for s_db, t_db in pairs:
        src, src_soon = state_of(source, s_db)
        tgt, tgt_soon = state_of(target, t_db)
        soon = src_soon | tgt_soon
        problems = []
        for key in sorted(set(src) | set(tgt)):
            if key in soon and (key not in src or key not in tgt):
                continue  # expiring while we compare: the source decides, both sides may differ by ms
            if key not in tgt:
                problems.append('missing on target: %r' % key)
            elif key not in src:
                problems.append('extra on target: %r' % key)
            elif src[key][0] != tgt[key][0]:
                problems.append('value differs: %r' % key)
            else:
                a, b = src[key][1], tgt[key][1]
                if (a == -1) != (b == -1) or abs(a - b) > ttl_tolerance_ms:
                    problems.append('expiry differs: %r %s vs %s' % (key, a, b))
        assert not problems, 'db %d -> %d: %d problems: %s' % (s_db, t_db, len(problems), problems[:10])
        assert len(src) > 0


@pytest.fixture
def syncs(tmp_path):
    """Registers (server for unpause, record path); kills followers and unpauses at the end."""
    todo = []
    yield todo
    for server, record in todo:
        try:
            server.admin().execute_command('CLIENT', 'UNPAUSE')
        except Exception:
            pass
        if os.path.exists(record):
            with open(record) as fh:
                pid = json.load(fh).get('pid')
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


DEFAULTS = dict(state='started', spool_dir=None, dbs=None, db_map=None, on_conflict='fail', max_lag=1048576,
                started_timeout=3600, drain_timeout=30, max_seconds=86400, spool_passphrase=None, backup=None,
                backup_passphrase=None)


def engine(module, args, check=False):
    """The module's engine in this process (an ansible-playbook run costs 10+ s on a loaded machine)."""
    assert module == 'kv_sync'
    params = dict(DEFAULTS)
    params.update(args)
    try:
        return Sync(Endpoint(params['source'], 'source'), Endpoint(params['target'], 'target'), params,
                    check_mode=check).run()
    except KVError as exc:
        out = dict(getattr(exc, 'partial', {}))
        out.update(exc.to_result())
        out['failed'] = True
        return out


def args_for(source, target, record, **extra):
    args = dict(source=source.endpoint(), target=target.endpoint(), record=str(record), started_timeout=120,
                max_lag=65536)
    args.update(extra)
    return args


def wait_for_ops(writer, ops, timeout=120):
    """Until the writer has done ``ops`` rounds of writes (a count, not a time: a loaded machine is only slower)."""
    deadline = time.time() + timeout
    while writer.ops < ops and writer.error is None and time.time() < deadline:
        time.sleep(0.01)
    assert writer.error is None, writer.error
    assert writer.ops >= ops, 'the writer did %d rounds in %d s' % (writer.ops, timeout)


def live_copy(run_module, source, target, tmp_path, syncs, pairs, flush_db=None, db_map=None, mid=None,
              tolerance=0, target_user='migrator', check_proc=None):
    """Start, write, (mid-hook), pause, stop, compare.  Returns (started, stopped) results."""
    record = tmp_path / 'sync.json'
    syncs.append((source, str(record)))
    extra = {}
    if db_map:
        extra['db_map'] = db_map
    dbs = sorted(set([s for s, _t in pairs] + ([flush_db] if flush_db is not None else [])))
    extra['dbs'] = dbs
    writer = Writer(source, [s for s, _t in pairs], flush_db=flush_db)
    writer.start()
    try:
        wait_for_ops(writer, 5)  # the snapshot is taken while the writer writes
        args = args_for(source, target, record, **extra)
        args['target'] = target.endpoint(user=target_user)
        t0 = time.time()
        started = run_module('kv_sync', args)
        assert started.get('failed') is not True, started.get('msg')
        assert started['phase'] == 'streaming' and started['changed'] is True
        if os.environ.get('KV_SYNC_DEBUG'):
            print('STARTED in', time.time() - t0, started['snapshot_seconds'], started['catchup_seconds'])
        if check_proc:
            check_proc(started)
        wait_for_ops(writer, writer.ops + 30)  # and the stream carries writes of every kind
        if mid is not None:
            mid(record, writer)
        source.admin().execute_command('CLIENT', 'PAUSE', 120000, 'WRITE')
        writer.stop = True
        t0 = time.time()
        if os.environ.get('KV_SYNC_DEBUG'):
            print('OFFSETS', source.admin().info('replication')['master_repl_offset'])
            print('BEFORE STOP', target.admin(0).execute_command('PEXPIRETIME', b'pre:ttl:0:0'),
                  source.admin(0).execute_command('PEXPIRETIME', b'pre:ttl:0:0'))
        stopped = run_module('kv_sync', dict(args, state='stopped'))
        if os.environ.get('KV_SYNC_DEBUG'):
            print('STOPPED in', time.time() - t0)
            print('AFTER STOP', target.admin(0).execute_command('PEXPIRETIME', b'pre:ttl:0:0'), stopped)
        assert stopped.get('failed') is not True, stopped.get('msg')
        assert stopped['phase'] == 'stopped' and stopped['final_offset'] >= started['offset']
        assert writer.error is None, writer.error
        assert writer.ops > 20
        all_pairs = list(pairs) + ([(flush_db, (db_map or {}).get(flush_db, flush_db))] if flush_db is not None else [])
        assert_identical(source, target, [p for p in all_pairs if p[0] != flush_db], tolerance)
        if flush_db is not None:
            problems = compare.differences(source.admin(flush_db), target.admin(all_pairs[-1][1]))
            if problems and os.environ.get('KV_SYNC_DEBUG'):
                for db in range(16):
                    print('DB', db, sorted(k for k in target.admin(db).scan_iter(match='f:*')))
                print('OFFSETS', source.admin().info('replication')['master_repl_offset'])
                print('SRC', sorted(source.admin(flush_db).scan_iter(match='f:*')))
                print('LOG', [e for e in iter_keys_log(stopped['keys_log']) if e[0] == 2][-30:])
            assert not problems, problems
        return started, stopped
    finally:
        writer.stop = True
        source.admin().execute_command('CLIENT', 'UNPAUSE')
        writer.join(10)


# -- the ledger test and the version matrix ------------------------------------------------------------

def follower_has_no_secret(started):
    """The follower started by ansible-playbook: no password in its argv or environment."""
    blobs = []
    for name in ('cmdline', 'environ'):
        with open('/proc/%d/%s' % (started['pid'], name), 'rb') as fh:
            blobs.append(fh.read().decode('utf-8', 'replace'))
    assert 'python' in blobs[0]
    for blob in blobs + [started['_output']]:
        assert_no_secret(blob)


LIBRARY = b"#!lua name=kvlib\nredis.register_function('kvf', function(keys, args) return 1 end)"


def test_live_copy_redis70_to_valkey80_tls_db_map(redis70, valkey80_tls, run_module, tmp_path, syncs):
    fast_source(redis70)
    preload(redis70, [0, 1], keys=5000)
    redis70.admin().execute_command('FUNCTION', 'LOAD', 'REPLACE', LIBRARY)
    valkey80_tls.admin().execute_command('FUNCTION', 'FLUSH')
    before_target = valkey80_tls.admin(4).dbsize()
    # the stream FLUSHes a db: the target user needs +flushdb (migrator has -@dangerous), hence admin
    started, stopped = live_copy(run_module, redis70, valkey80_tls, tmp_path, syncs, [(0, 0), (1, 5)], flush_db=2,
                                 db_map={1: 5}, target_user='admin', check_proc=follower_has_no_secret)
    assert started['ttl_mode'] == 'hold'
    # 2 x 5,540 keys preloaded; the writer deletes up to 3,000 pre: keys per db before the fork, as fast as it runs
    assert started['totals']['copied'] >= 2 * (5540 - 3000) and started['totals']['expired'] == 0
    assert stopped['expiries_settled'] > 0 and stopped['keys_written_since_snapshot'] > 0
    libraries = valkey80_tls.admin().execute_command('FUNCTION', 'LIST')
    assert b'kvlib' in repr(libraries).encode()  # the snapshot's function library is on the target
    redis70.admin().execute_command('FUNCTION', 'FLUSH')
    assert valkey80_tls.admin(1).dbsize() == 0 and valkey80_tls.admin(4).dbsize() == before_target
    # the touched-keys log names keys of the mapped dbs, flushes as whole-db markers
    entries = list(iter_keys_log(stopped['keys_log']))
    assert (5, b'tx:a') in entries and (0, b'ev:h') in entries and (2, None) in entries
    assert not any(db == 1 for db, _k in entries)
    assert_no_secret(started)
    assert_no_secret(stopped)
    # a second stopped changes nothing
    again = engine('kv_sync', dict(args_for(redis70, valkey80_tls, tmp_path / 'sync.json'), state='stopped',
                                   target=valkey80_tls.endpoint(user='admin')))
    assert again['changed'] is False and again['phase'] == 'stopped'


@pytest.mark.parametrize('flavour,diskless', [('redis62', True), ('redis72', False), ('valkey80', False),
                                              ('valkey90', True), ('valkey91', True)])
def test_live_copy_versions(request, flavour, diskless, valkey80_tls, valkey9, tmp_path, syncs):
    """Into Valkey 8.0; a Valkey 9.1 source writes RDB 11 for us (REPLCONF version, diskless only); 9.0 -> 9.1.
    Valkey 8.0 -> 8.0 runs the other way round: the replica link over TLS."""
    source = request.getfixturevalue({'valkey91': 'valkey9', 'valkey80': 'valkey80_tls'}.get(flavour, flavour))
    target = valkey9 if flavour == 'valkey90' else valkey80_tls
    if flavour == 'valkey80':
        target = request.getfixturevalue('valkey80')
    fast_source(source, diskless=diskless)
    preload(source, [0, 3], keys=500)
    # A 6.2 source streams relative expiries; they are made absolute when received, which is later than when the
    # source ran them by the time the stream waited (during the snapshot transfer: up to its length).
    started, stopped = live_copy(engine, source, target, tmp_path, syncs, [(0, 0), (3, 3)],
                                 tolerance=5000 if flavour == 'redis62' else 0)
    assert started['transfer'] == ('diskless' if diskless else 'disk')


@pytest.mark.parametrize('source_name,target_name', [('valkey90', 'valkey9'), ('valkey80', 'valkey81')])
def test_live_copy_disk_import_mode(request, source_name, target_name, tmp_path, syncs):
    """Valkey 9.0 -> 9.1 and 8.0 -> 8.1 (the first Valkey with the import mode), disk-based, with the target's
    import mode (the target user may CONFIG SET); switched off again at the drain."""
    source, target = request.getfixturevalue(source_name), request.getfixturevalue(target_name)
    fast_source(source, diskless=False)
    preload(source, [0], keys=500)
    try:
        started, stopped = live_copy(engine, source, target, tmp_path, syncs, [(0, 0)], target_user='admin')
        assert started['ttl_mode'] == 'import'
        assert target.admin().config_get('import-mode')['import-mode'] == 'no'
    finally:
        target.admin().config_set('import-mode', 'no')


# -- resume ---------------------------------------------------------------------------------------------

def _kill_follower(record, target=None):
    """SIGKILL the follower; with ``target``, only once it has applied some of the stream (its offset marker is on
    the target): a follower killed before that holds just the snapshot and starts over, which is not what the
    resume tests are about."""
    with open(record) as fh:
        rec = json.load(fh)
    pid = rec['pid']
    if target is not None:
        db, key = rec['marker']
        deadline = time.time() + 120
        while not target.admin(db).exists(key.encode()) and time.time() < deadline:
            time.sleep(0.02)
        assert target.admin(db).exists(key.encode()), 'the follower applied nothing of the stream'
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 60
    while os.path.exists('/proc/%d' % pid) and time.time() < deadline:
        time.sleep(0.02)
    assert not os.path.exists('/proc/%d' % pid), 'the killed follower is still there'
    return pid


def test_follower_killed_resumes_with_psync_continue(redis70, valkey80_tls, tmp_path, syncs):
    admin = fast_source(redis70)
    admin.config_set('repl-backlog-size', 256 << 20)  # the gap must fit the backlog even on a loaded machine
    preload(redis70, [0], keys=1000)
    seen = {}

    def mid(record, writer):
        seen['pid'] = _kill_follower(record, valkey80_tls)
        wait_for_ops(writer, writer.ops + 10)  # the writer goes on while nobody follows
        again = engine('kv_sync', args_for(redis70, valkey80_tls, record, dbs=[0]))
        assert again.get('failed') is not True, again.get('msg')
        seen['again'] = again
        wait_for_ops(writer, writer.ops + 10)

    live_copy(engine, redis70, valkey80_tls, tmp_path, syncs, [(0, 0)], mid=mid)
    again = seen['again']
    assert again['changed'] is True and again['resumed'] is True
    assert (again['continued'], again['full_resyncs']) == (1, 0), again
    assert again['pid'] != seen['pid']


def test_backlog_too_small_forces_new_snapshot(redis70, valkey80_tls, tmp_path, syncs):
    admin = fast_source(redis70)
    preload(redis70, [0], keys=1000)
    seen = {}

    def mid(record, writer):
        admin.config_set('repl-backlog-size', 16384)
        _kill_follower(record, valkey80_tls)
        wait_for_ops(writer, writer.ops + 100)  # far more than 16 KiB of stream
        seen['again'] = engine('kv_sync', args_for(redis70, valkey80_tls, record, dbs=[0]))
        assert seen['again'].get('failed') is not True, seen['again'].get('msg')

    try:
        live_copy(engine, redis70, valkey80_tls, tmp_path, syncs, [(0, 0)], mid=mid)
    finally:
        admin.config_set('repl-backlog-size', 1 << 20)
    assert seen['again']['resumed'] is True, seen['again']
    assert seen['again']['full_resyncs'] == 1, seen['again']


def test_follower_stops_when_its_record_is_replaced(redis70, valkey80_tls, tmp_path, syncs):
    fast_source(redis70)
    redis70.admin().set(b'k', b'v')
    record = tmp_path / 'sync.json'
    syncs.append((redis70, str(record)))
    started = engine('kv_sync', args_for(redis70, valkey80_tls, record, dbs=[0]))
    assert started['phase'] == 'streaming', started
    with open(record) as fh:
        rec = json.load(fh)
    rec['token'] = 'someone-else'
    with open(record, 'w') as fh:
        json.dump(rec, fh)
    deadline = time.time() + 60
    while os.path.exists('/proc/%d' % started['pid']) and time.time() < deadline:
        time.sleep(0.05)
    assert not os.path.exists('/proc/%d' % started['pid'])
    with open(record) as fh:
        assert json.load(fh)['token'] == 'someone-else'  # the follower did not write over it
    os.unlink(str(record))
    deadline = time.time() + 60
    while redis70.admin().info('replication')['connected_slaves'] and time.time() < deadline:
        time.sleep(0.05)
    assert redis70.admin().info('replication')['connected_slaves'] == 0


# -- check mode, refusals, secrets, the source untouched -------------------------------------------------

def test_check_mode_plans_and_starts_nothing(redis70, valkey80_tls, run_module, tmp_path):
    preload(redis70, [0], keys=100, short=False)
    record = tmp_path / 'sync.json'
    result = run_module('kv_sync', args_for(redis70, valkey80_tls, record), check=True)
    assert result.get('failed') is not True, result.get('msg')
    assert result['changed'] is True and any('live copy possible' in line for line in result['plan'])
    assert [d for d in result['dbs'] if d['db'] == 0][0]['keys'] == 100 + 10 + 5 * len(AWKWARD)
    assert sorted(os.listdir(str(tmp_path))) == ['play.yml', 'result.json']
    assert valkey80_tls.admin().dbsize() == 0
    assert redis70.admin().info('replication')['connected_slaves'] == 0


def test_not_possible_cases_name_their_reason_first(redis70, redis74, valkey90, valkey80_tls, tmp_path):
    admin = redis70.admin()
    admin.execute_command('ACL', 'SETUSER', 'nopsync', 'on', '>np-Secret-7', '~*', '+@all', '-psync', '-sync')
    try:
        record = tmp_path / 'sync.json'
        args = args_for(redis70, valkey80_tls, record)
        args['source'] = dict(redis70.endpoint(), username='nopsync', password='np-Secret-7')
        result = engine('kv_sync', args)
        assert result['failed'] and 'PSYNC' in result['msg'] and 'live copy is not possible' in result['msg']
        assert not os.path.exists(record)
        assert_no_secret(result, 'np-Secret-7')
    finally:
        admin.execute_command('ACL', 'DELUSER', 'nopsync')
    redis74.admin().set(b'k', b'v')
    result = engine('kv_sync', args_for(redis74, valkey80_tls, tmp_path / 'sync74.json'))
    assert result['failed'] and 'payload version (RDB 12)' in result['msg']
    assert not os.path.exists(tmp_path / 'sync74.json')
    valkey90.admin().set(b'k', b'v')  # Valkey 9.0 ignores REPLCONF version: RDB 80, which 8.0 refuses
    result = engine('kv_sync', args_for(valkey90, valkey80_tls, tmp_path / 'sync90.json'))
    assert result['failed'] and 'payload version (RDB 80)' in result['msg']
    assert valkey80_tls.admin().dbsize() == 0
    source, target = Endpoint(redis70.endpoint(), 'source'), Endpoint(valkey80_tls.endpoint(), 'target')
    pre = preflight(source, target, match='user:*')
    assert pre['live_possible'] is False and 'match filter' in pre['live_reason']
    pre = preflight(source, target)
    assert pre['live_possible'] is True and pre['live_reason'] is None


def test_cluster_without_slots_is_refused(server_factory, valkey80_tls, tmp_path):
    """A cluster-mode node that serves no slot (not yet joined or assigned) can be neither copied nor followed: the
    preflight stops with the reason and the way out, and kv_sync refuses before anything starts or is written."""
    node = servers.Server('redis70', extra=['cluster-enabled yes', 'cluster-config-file nodes.conf'])
    server_factory.started.append(node)
    for port in range(31000 + os.getpid() % 20000, 56000, 97):  # cluster mode wants port + 10000 free, < 65536
        if _port_free(port) and _port_free(port + 10000):
            node.start(port)
            break
    with pytest.raises(KVError) as err:
        preflight(Endpoint(node.endpoint(), 'source'), Endpoint(valkey80_tls.endpoint(), 'target'))
    assert 'no master serves any slot' in err.value.message and 'CLUSTER ADDSLOTS' in err.value.message
    record = tmp_path / 'unassigned.json'
    params = dict(DEFAULTS)
    params.update(args_for(node, valkey80_tls, record))
    with pytest.raises(KVError) as err:  # the module's entry: a cluster-mode source goes to the cluster engine
        live_sync(Endpoint(params['source'], 'source'), Endpoint(params['target'], 'target'), params)
    assert err.value.kind == 'config'
    result = dict(msg=err.value.message)
    assert 'no master serves any slot' in result['msg'] and 'CLUSTER ADDSLOTS' in result['msg']
    assert not os.path.exists(record)
    assert valkey80_tls.admin().dbsize() == 0


def _port_free(port):
    sock = socket.socket()
    try:
        sock.bind(('127.0.0.1', port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def test_no_secret_anywhere_and_source_untouched(redis70, valkey80_tls, tmp_path, syncs):
    fast_source(redis70)
    preload(redis70, [0], keys=200, short=False)
    before = compare.snapshot(redis70)
    writes = compare.source_writes(redis70)
    record = tmp_path / 'sync.json'
    syncs.append((redis70, str(record)))
    args = args_for(redis70, valkey80_tls, record, dbs=[0], spool_passphrase='spool-Secret-6')
    started = engine('kv_sync', args)
    assert started.get('failed') is not True, started.get('msg')
    pid = started['pid']
    with open('/proc/%d/cmdline' % pid, 'rb') as fh:
        cmdline = fh.read().decode('utf-8', 'replace')
    with open('/proc/%d/environ' % pid, 'rb') as fh:
        environ = fh.read().decode('utf-8', 'replace')
    with open(record) as fh:
        text = fh.read()
    assert oct(os.stat(record).st_mode & 0o777) == '0o600'
    for blob in (cmdline, environ, text, repr(started)):
        assert_no_secret(blob, 'spool-Secret-6')
    # the follower is a replica that cannot be reached: it announces port 0
    info = redis70.admin().info('replication')
    assert info['connected_slaves'] == 1 and info['slave0']['port'] == 0
    again = engine('kv_sync', args)
    assert again['changed'] is False and again['pid'] == pid
    stopped = engine('kv_sync', dict(args, state='stopped'))
    assert stopped['phase'] == 'stopped' and not os.path.exists('/proc/%d' % pid) or \
        open('/proc/%d/stat' % pid).read().split()[2] == 'Z'
    assert compare.snapshot(redis70) == before and compare.source_writes(redis70) == writes
    compare.assert_same(redis70, valkey80_tls, [(0, 0)])
    for blob in (repr(stopped), open(record).read()):
        assert_no_secret(blob, 'spool-Secret-6')
    refused = engine('kv_sync', args)  # a drained copy is never restarted over a target that may be in use
    assert refused['failed'] and 'state=absent' in refused['msg']
    gone = engine('kv_sync', dict(args, state='absent'))
    assert gone['changed'] is True and not os.path.exists(record)
    assert engine('kv_sync', dict(args, state='absent'))['changed'] is False
    assert PASSWORDS['migrator'] not in text


# -- expiry in transit, deterministic (the applier alone on a real target) --------------------------------

@pytest.mark.parametrize('mode', ['hold', 'hold-without-eval', 'import'])
def test_key_expiring_in_transit_survives_its_renewal(mode, valkey80, valkey9, tmp_path):
    """A snapshot key whose expiry passed before its renewal arrives must get the renewal, not vanish."""
    target = valkey9 if mode == 'import' else valkey80
    without_eval = mode == 'hold-without-eval'
    mode = 'hold' if without_eval else mode
    admin = target.admin()
    admin.set(b'tmp', b'value')
    payload = admin.dump(b'tmp')
    admin.delete(b'tmp')
    if mode == 'import':
        admin.config_set('import-mode', 'yes')
    keys_log, held_log = KeysLogWriter(str(tmp_path / 'keys')), KeysLogWriter(str(tmp_path / 'held'))
    ep = Endpoint(target.endpoint(user='admin'), 'target')
    applier = Applier(ep, [(0, 0)], keys_log, ttl_mode=mode, held_log=held_log)
    try:
        applier.connect(import_source=(mode == 'import'))
        now = int(time.time() * 1000)
        for key in (b'renewed', b'deleted', b'untouched'):
            applier.snapshot_event(('key', 0, key, payload, now - 500))       # expired while in transit
        applier.snapshot_event(('key', 0, b'later', payload, now + 3600000))
        applier.wait_all()
        stream = (pack_args([b'SELECT', b'0']) + pack_args([b'PEXPIREAT', b'renewed', b'%d' % (now + 60000)]) +
                  pack_args([b'DEL', b'deleted']) + pack_args([b'SET', b'rel', b'v', b'EX', b'100']) +
                  pack_args([b'PING']))
        applier.applied = 0
        assert applier.feed(stream, now, 0) == len(stream)
        applier.wait_all()
        assert applier.applied == len(stream)
    finally:
        applier.close()
        keys_log.close()
        held_log.close()
    if mode == 'hold':
        if without_eval:  # the drain's fallback: a pipeline of PEXPIRETIME / PEXPIREAT
            admin.execute_command('ACL', 'SETUSER', 'noeval', 'on', '>ne-Secret-5', '~*', '&*', '+@all', '-eval',
                                  '-evalsha')
            ep = Endpoint(dict(target.endpoint(user=None), username='noeval', password='ne-Secret-5'), 'target')
        try:
            assert settle_expiries(ep, str(tmp_path / 'keys'), str(tmp_path / 'held')) == 4
        finally:
            admin.execute_command('ACL', 'DELUSER', 'noeval')
    else:
        admin.config_set('import-mode', 'no')
    assert admin.execute_command('PEXPIRETIME', b'renewed') == now + 60000
    assert admin.execute_command('PEXPIRETIME', b'rel') == now + 100000
    assert admin.execute_command('PEXPIRETIME', b'later') == now + 3600000
    assert admin.exists(b'deleted') == 0 and admin.exists(b'untouched') == 0  # the source's own expiry holds
    assert list(iter_keys_log(str(tmp_path / 'keys'))) == [(0, b'renewed'), (0, b'deleted'), (0, b'rel')]


# -- a source restart -------------------------------------------------------------------------------------

def test_source_restart_continues(server_factory, valkey80_tls, tmp_path, syncs):
    """A restarted Redis 7 that saved its RDB keeps its replication id: the follower continues; the data matches."""
    source = server_factory('redis70', extra=['repl-diskless-sync-delay 0', 'save 3600 1'])
    preload(source, [0], keys=300, short=False)
    record = tmp_path / 'sync.json'
    syncs.append((source, str(record)))
    args = args_for(source, valkey80_tls, record, dbs=[0])
    started = engine('kv_sync', args)
    assert started['phase'] == 'streaming', started
    source.admin().set(b'before-restart', b'1')
    source.restart()  # SIGTERM: the RDB is saved with the replication id and offset
    source.admin().set(b'after-restart', b'2')
    source.admin().incr(b'ctr')
    deadline = time.time() + 120
    while time.time() < deadline:
        with open(record) as fh:
            rec = json.load(fh)
        if rec.get('continued', 0) + rec.get('full_resyncs', 0) >= 1 and rec['phase'] == 'streaming':
            break
        time.sleep(0.1)
    source.admin().execute_command('CLIENT', 'PAUSE', 60000, 'WRITE')
    stopped = engine('kv_sync', dict(args, state='stopped'))
    assert stopped['phase'] == 'stopped', stopped
    assert (stopped['continued'], stopped['full_resyncs']) == (1, 0), stopped  # PSYNC continue after the restart
    assert_identical(source, valkey80_tls, [(0, 0)])


# -- the source drops the follower for its replica output-buffer limit ---------------------------------------

@pytest.mark.parametrize('flavour', ['valkey80', 'redis70'])
def test_output_buffer_drop_is_named_with_the_setting(flavour, server_factory, valkey80_tls, tmp_path, syncs):
    """Writes taken while the source writes its snapshot (slowed to ~2 s per key delay) overflow a 64 KB replica
    buffer: the source drops the link.  The follower stops (a retry would be dropped again) with the setting named:
    with the value and ``error: buffer_limit`` where the source counts such drops (Valkey, Redis >= 7.4), as the
    likely cause elsewhere.  Nothing is left running and the source is not written to."""
    source = server_factory(flavour, extra=['repl-diskless-sync no', 'client-output-buffer-limit replica 64kb 32kb 1'])
    admin = source.admin()
    pipe = admin.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(b'k:%d' % i, b'v')
    pipe.execute()
    admin.config_set('rdb-key-save-delay', 1000)  # 2,000 keys: the snapshot takes about 2 s
    stop = threading.Event()

    def write():
        c = source.admin()
        i = 0
        while not stop.is_set():
            c.set(b'w:%d' % (i % 100), b'x' * 2048)
            i += 1
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    record = tmp_path / 'sync.json'
    syncs.append((source, str(record)))
    try:
        result = engine('kv_sync', args_for(source, valkey80_tls, record, started_timeout=60))
    finally:
        stop.set()
        writer.join(10)
    admin.config_set('rdb-key-save-delay', 0)
    assert result.get('failed') is True and result['phase'] == 'failed', result
    assert 'client-output-buffer-limit' in result['msg'] and 'run state=started again' in result['msg'] \
        if flavour == 'valkey80' else 'client-output-buffer-limit replica' in result['msg'], result['msg']
    if flavour == 'valkey80':
        assert result['error'] == 'buffer_limit', result
        assert '(replica 65536 32768 1)' in result['msg'] and 'went from 0 to 1' in result['msg'], result['msg']
    else:  # Redis 7.0 does not count the drops: the likely cause, named
        assert result['error'] == 'connection', result
    rec = json.load(open(str(record)))
    pid = rec.get('pid')
    deadline = time.time() + 10
    while pid and time.time() < deadline and os.path.exists('/proc/%d' % pid):
        time.sleep(0.05)
    assert not pid or not os.path.exists('/proc/%d' % pid), 'the follower still runs'
    absent = engine('kv_sync', dict(args_for(source, valkey80_tls, record), state='absent'))
    assert absent.get('failed') is not True and not os.path.exists(str(record)), absent  # the failed record goes
    assert len(list(admin.scan_iter(match='k:*', count=1000))) == 2000  # the source keeps its keys
    assert admin.info('replication')['connected_slaves'] == 0


# -- held expiries set before the drain ----------------------------------------------------------------------

def _wait_record(record, predicate, seconds=60):
    deadline = time.time() + seconds
    rec = {}
    while time.time() < deadline:
        with open(str(record)) as fh:
            rec = json.load(fh)
        if predicate(rec):
            return rec
        time.sleep(0.05)
    raise AssertionError('the record never reached the expected state: %s' % rec)


def test_held_expiries_far_ahead_are_set_before_the_drain(redis70, valkey80, tmp_path, syncs):
    """ttl_mode hold: once caught up, the follower sets the exact expiry of held keys more than 2 minutes ahead
    (snapshot keys and stream keys); nearer ones stay held until the drain.  After the drain every expiry is
    exact, and the drain set only the near ones."""
    fast_source(redis70)
    admin = redis70.admin()
    now = int(time.time() * 1000)
    pipe = admin.pipeline(transaction=False)
    for i in range(300):
        pipe.set(b'far:%d' % i, b'v', pxat=now + 3600000 + i)
    for i in range(50):
        pipe.set(b'near:%d' % i, b'v', pxat=now + 60000 + i)
    for i in range(20):
        pipe.set(b'none:%d' % i, b'v')
    pipe.execute()
    record = tmp_path / 'sync.json'
    syncs.append((redis70, str(record)))
    args = args_for(redis70, valkey80, record, dbs=[0])
    started = engine('kv_sync', args)
    assert started['phase'] == 'streaming' and started['ttl_mode'] == 'hold', started
    _wait_record(record, lambda r: r.get('expiries_settled_early', 0) >= 300)
    target = valkey80.admin()
    assert target.execute_command('PEXPIRETIME', b'far:7') == now + 3600007  # exact already
    assert target.execute_command('PEXPIRETIME', b'near:7') > now + 50 * 365 * 86400 * 1000  # still held
    # through the stream: a far one is set early too, a near one waits for the drain
    admin.set(b'far:stream', b'v', pxat=now + 7200000)
    admin.set(b'near:stream', b'v', pxat=now + 90000)
    _wait_record(record, lambda r: r.get('expiries_settled_early', 0) >= 301)
    assert target.execute_command('PEXPIRETIME', b'far:stream') == now + 7200000
    admin.execute_command('CLIENT', 'PAUSE', 60000, 'WRITE')
    try:
        stopped = engine('kv_sync', dict(args, state='stopped'))
    finally:
        admin.execute_command('CLIENT', 'UNPAUSE')
    assert stopped['phase'] == 'stopped', stopped
    assert stopped['expiries_settled_early'] == 301, stopped
    assert stopped['expiries_settled'] == 51, stopped  # only the near ones inside the pause
    assert set(stopped['drain_steps']) == {'wait', 'stop', 'settle'}
    assert_identical(redis70, valkey80, [(0, 0)])


def test_settler_stops_at_the_keys_whose_writes_are_answered(valkey80, tmp_path):
    """The logs are written ahead of the commands: a pass reads them only up to the bound the applier gives (the
    keys of answered commands), so a key whose held write is still in flight is looked at again later."""
    from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import KeysLogWriter
    from ansible_collections.kvtools.migration.plugins.module_utils._sync_keys import HOLD_OFFSET
    from ansible_collections.kvtools.migration.plugins.module_utils._sync_settle import BackgroundSettler
    target = valkey80.admin()
    far = int(time.time() * 1000) + 3600000
    target.set(b'answered', b'1', pxat=far + HOLD_OFFSET)
    keys = KeysLogWriter(str(tmp_path / 'keys'))
    keys.add(0, b'answered')
    bound = keys.flush()
    keys.add(0, b'in flight')  # logged, its SET not yet answered
    keys.flush()
    held = KeysLogWriter(str(tmp_path / 'held'))
    held.flush()
    settler = BackgroundSettler(Endpoint(valkey80.endpoint(), 'target'), HOLD_OFFSET,
                                dict(held=(str(tmp_path / 'held'), 0), keys=(str(tmp_path / 'keys'), 0)),
                                str(tmp_path / 'settle'), lambda: True, lambda: dict(held=0, keys=bound))
    writer = KeysLogWriter(str(tmp_path / 'settle'))
    settler.one_pass(writer)
    assert target.execute_command('PEXPIRETIME', b'answered') == far
    assert settler.published['keys'] == bound and settler.settled == 1
    target.set(b'in flight', b'2', pxat=far + HOLD_OFFSET)  # now answered
    settler.bounds = lambda: dict(held=0, keys=keys.flush())
    settler.one_pass(writer)
    assert target.execute_command('PEXPIRETIME', b'in flight') == far and settler.settled == 2
    target.delete(b'answered', b'in flight')
