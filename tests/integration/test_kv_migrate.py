"""kv_migrate against real servers.

Every test checks that the source is exactly as it was (``snapshot`` before and after, and its
write counter) - MIGRATE always carries COPY.
"""

import socket
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _migrate, _wire
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._copy import DbCopy
from ansible_collections.kvtools.migration.plugins.module_utils._migrate import Migrate, MigrateOptions, MigrateWriter
from tests.conftest import assert_no_secret
from tests.support import compare, data
from tests.support.servers import PASSWORDS


def migrate(source, target, **options):
    src = source if isinstance(source, dict) else source.endpoint()
    tgt = target if isinstance(target, dict) else target.endpoint()
    return Migrate(Endpoint(src, 'source'), Endpoint(tgt, 'target'), MigrateOptions(**options)).run()


class Untouched:
    """``with Untouched(server):`` fails when anything in the server's data changed."""

    def __init__(self, server, dbs=range(16)):
        self.server = server
        self.dbs = dbs

    def __enter__(self):
        self.before = compare.snapshot(self.server, self.dbs)
        self.writes = compare.source_writes(self.server)
        return self

    def __exit__(self, *exc):
        assert compare.snapshot(self.server, self.dbs) == self.before, 'the source data changed'
        assert compare.source_writes(self.server) == self.writes, 'the source was written to'


def load_dbs(server, dbs, big=0):
    """Load every type into each db; returns the number of keys per db."""
    counts = [len(data.load_all_types(server.admin(db), prefix=b'db%d:' % db, big=big)) for db in dbs]
    return counts[0]


def _closed_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# --- through ansible-playbook ---------------------------------------------------------------------

def test_all_types_awkward_names_dbs_and_db_map_check_then_migrate_then_unchanged(redis70, valkey80, run_module):
    n = load_dbs(redis70, [0, 3, 15], big=3000)
    args = {'source': redis70.endpoint(), 'target': valkey80.endpoint(), 'db_map': {3: 4}}
    with Untouched(redis70):
        plan = run_module('kv_migrate', args, check=True, diff=True)
        assert not plan.get('failed'), plan['msg']
        assert valkey80.admin().info('keyspace') == {}, 'check mode wrote to the target'
        first = run_module('kv_migrate', args)
        assert not first.get('failed'), first['msg']
        second = run_module('kv_migrate', args)
    assert first['changed'] and not second['changed']
    assert [d['copied'] for d in plan['dbs']] == [d['copied'] for d in first['dbs']]
    assert plan['batches'] == first['batches'] and first['batches'] >= 3
    assert plan['diff']['after']['keys_per_db'] == {'0': n, '4': n, '15': n}
    assert [(d['db'], d['target_db']) for d in first['dbs']] == [(0, 0), (3, 4), (15, 15)]
    assert first['totals']['copied'] == first['totals']['keys'] == 3 * n
    assert second['totals']['identical'] == 3 * n and second['totals']['copied'] == 0
    assert first['payload_path'] == 'migrate' and first['migrate_address'] == '127.0.0.1:%d' % valkey80.port
    compare.assert_same(redis70, valkey80, [(0, 0), (3, 4), (15, 15)])
    for name in data.AWKWARD_KEYS:
        assert valkey80.admin(0).exists(b'db0:' + name), name
    assert_no_secret(first)
    assert_no_secret(plan)


def test_password_only_target_redis62(redis62, server_factory, run_module):
    """A Redis 6 target with requirepass only: MIGRATE ... AUTH pw (from a Redis 6.2 source: same payloads)."""
    target = server_factory('redis62', password_only=True)
    load_dbs(redis62, [0, 2])
    with Untouched(redis62):
        result = run_module('kv_migrate', {'source': redis62.endpoint(), 'target': target.endpoint()})
    assert not result.get('failed'), result['msg']
    compare.assert_same(redis62, target, [(0, 0), (2, 2)])
    assert_no_secret(result)


def test_newer_source_to_redis62_is_refused_before_copying(redis70, redis62):
    load_dbs(redis70, [0])
    with Untouched(redis70):
        with pytest.raises(KVError) as err:
            migrate(redis70, redis62)
    assert err.value.kind == 'payload' and 'kv_dump_restore' in str(err.value)
    assert redis62.admin().dbsize() == 0


def test_acl_user_target_valkey9(redis70, valkey9):
    """Valkey 9 target with an ACL user: MIGRATE ... AUTH2 user pw.  Redis 7.0 payloads are older: accepted."""
    n = load_dbs(redis70, [1], big=2000)
    admin = redis70.admin()
    admin.config_set('slowlog-log-slower-than', 0)
    admin.slowlog_reset()
    try:
        with Untouched(redis70):
            result = migrate(redis70, valkey9)
        logged = [e['command'] for e in admin.slowlog_get(128) if e['command'].startswith(b'MIGRATE')]
    finally:
        admin.config_set('slowlog-log-slower-than', 10000)
    assert result['totals']['copied'] == n and result['totals']['failed'] == 0
    compare.assert_same(redis70, valkey9, [(1, 1)])
    # the target's credentials travel inside MIGRATE; the source must not keep them in its slow log
    assert logged and all(b'AUTH2 (redacted) (redacted)' in cmd for cmd in logged), logged
    assert not any(PASSWORDS['migrator'].encode() in cmd for cmd in logged)


def test_conflicts_fail_skip_replace(redis70, valkey80):
    n = load_dbs(redis70, [0])
    t = valkey80.admin()
    t.set(b'db0:list', b'a string where the source has a list')
    t.set(b'db0:str:ttl', b'expiring')  # same value, but no TTL: differs
    t.set(b'only-on-target', b'kept')
    with Untouched(redis70):
        with pytest.raises(KVError) as err:
            migrate(redis70, valkey80)
        assert err.value.kind == 'conflict' and 'Nothing was written' in str(err.value)
        assert t.dbsize() == 3
        skipped = migrate(redis70, valkey80, on_conflict='skip')
        assert skipped['totals']['conflicts'] == 2 and skipped['totals']['skipped'] == 2
        assert t.type(b'db0:list') == b'string'
        replaced = migrate(redis70, valkey80, on_conflict='replace')
    assert replaced['totals']['replaced'] == 2 and replaced['totals']['identical'] == n - 2
    assert t.type(b'db0:list') == b'list' and t.get(b'only-on-target') == b'kept'
    t.delete(b'only-on-target')
    compare.assert_same(redis70, valkey80, [(0, 0)])


def test_expiring_keys_are_counted_not_failed(redis70, valkey80, monkeypatch):
    """Keys that expire between SCAN and MIGRATE are counted as expired, never as failed.  The expiry is reached
    deterministically: the first MIGRATE call waits until every key with a TTL has expired."""
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(2000):
        pipe.set(b'k%d' % i, b'v', px=6000 if i % 2 else None)
    pipe.execute()
    expired_at = time.time() + 6.2
    MigrateCalls(monkeypatch, before=1, action=lambda: time.sleep(max(0.0, expired_at - time.time())))
    with Untouched(redis70, dbs=[]):
        result = migrate(redis70, valkey80, batch_size=200, workers=1)
    totals = result['totals']
    assert totals['failed'] == 0 and totals['expired'] > 0
    assert totals['copied'] + totals['expired'] == totals['keys']
    assert totals['copied'] >= valkey80.admin().dbsize()


def test_nokey_reply_counts_the_batch_as_expired(redis70, valkey80):
    """MIGRATE answers NOKEY when none of its keys exists any more (expired since SCAN)."""
    redis70.admin().set(b'present', b'x')
    run = Migrate(Endpoint(redis70.endpoint(), 'source'), Endpoint(valkey80.endpoint(), 'target'), MigrateOptions())
    run.connect()
    state = DbCopy(0, 0, 'migrate')
    reader = run.source.reader(0, values=False)
    worker = MigrateWriter(run, state, reader, planning=False, check_existing=False)
    try:
        with Untouched(redis70, dbs=[0]):
            counts = {}
            assert worker.migrate([b'gone:1', b'gone\n2'], False, counts, []) == 'nokey'
            assert counts == {'expired': 2}
            assert worker.migrate([b'present', b'gone:3'], False, counts, []) == 'ok'
    finally:
        worker.close()
        reader.close()
    assert valkey80.admin().get(b'present') == b'x'


# --- errors: early and clear ----------------------------------------------------------------------

def test_source_cannot_reach_target_fails_on_first_batch(redis70, valkey80, run_module):
    load_dbs(redis70, [0, 1])
    target = valkey80.endpoint(migrate_port=_closed_port())
    with Untouched(redis70):
        result = run_module('kv_migrate', {'source': redis70.endpoint(), 'target': target})
    assert result['failed'] and result['error'] == 'unreachable', result['msg']
    assert 'could not reach the target' in result['msg'] and 'kv_dump_restore' in result['msg']
    assert 'migrate_host' in result['msg']
    assert result['totals']['copied'] == 0 and valkey80.admin().info('keyspace') == {}
    assert_no_secret(result)


def test_tls_only_target_without_tls_cluster_fails_before_copying(redis70, valkey80_tls, run_module):
    load_dbs(redis70, [0])
    with Untouched(redis70):
        result = run_module('kv_migrate', {'source': redis70.endpoint(), 'target': valkey80_tls.endpoint()})
    assert result['failed'] and result['error'] == 'tls', result['msg']
    assert 'tls-cluster is no' in result['msg'] and 'kv_dump_restore' in result['msg']
    assert valkey80_tls.admin().info('keyspace') == {}
    assert_no_secret(result)


def test_payload_version_refused_valkey9_to_redis70(valkey9, redis70, run_module):
    load_dbs(valkey9, [0])
    with Untouched(valkey9):
        result = run_module('kv_migrate', {'source': valkey9.endpoint(), 'target': redis70.endpoint()})
    assert result['failed'] and result['error'] == 'payload', result['msg']
    assert 'kv_dump_restore' in result['msg'] and 'payload=auto' in result['msg']
    assert redis70.admin().info('keyspace') == {}


def test_wrong_target_password_is_reported_by_the_target(redis70, valkey80, run_module):
    """The module's own login to the target fails first, with the target named."""
    load_dbs(redis70, [0])
    target = valkey80.endpoint(password='not-the-password')
    with Untouched(redis70):
        result = run_module('kv_migrate', {'source': redis70.endpoint(), 'target': target})
    assert result['failed'] and result['error'] == 'auth', result['msg']
    assert str(valkey80.port) in result['msg']
    assert_no_secret(result, 'not-the-password')


def test_target_refuses_the_credentials_migrate_sends(redis70, valkey80):
    """A target user the module may log in with, but that may not RESTORE what MIGRATE sends."""
    load_dbs(redis70, [0])
    valkey80.admin().execute_command('ACL', 'SETUSER', 'noasking', 'on', '>NoAsk-Pass-1', '~*', '+@all',
                                     '-restore')
    try:
        with Untouched(redis70):
            with pytest.raises(KVError) as err:
                migrate(redis70, valkey80.endpoint(user=None, username='noasking', password='NoAsk-Pass-1'))
    finally:
        valkey80.admin().execute_command('ACL', 'DELUSER', 'noasking')
    assert err.value.kind == 'noperm', str(err.value)
    assert 'ACL SETUSER noasking +restore' in str(err.value) and 'NoAsk-Pass-1' not in str(err.value)
    assert valkey80.admin().dbsize() == 0


def test_target_out_of_memory_reports_what_was_copied(redis70, server_factory):
    target = server_factory('valkey80', extra=['maxmemory 3mb', 'maxmemory-policy noeviction'])
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(b'big:%d' % i, b'x' * 2000)
    pipe.execute()
    with Untouched(redis70, dbs=[]):
        with pytest.raises(KVError) as err:
            migrate(redis70, target, batch_size=100)
    assert err.value.kind == 'oom', str(err.value)
    assert 0 < err.value.partial['totals']['copied'] < 3000


def test_big_keys_are_bounded_by_bytes(redis70, valkey80):
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(200):
        pipe.set(b'blob:%d' % i, b'%06d' % i * 20000)  # 120 kB each
    pipe.execute()
    with Untouched(redis70, dbs=[]):
        result = migrate(redis70, valkey80, batch_bytes=1024 * 1024)
    assert result['totals']['copied'] == 200
    assert result['batches'] >= 200 * 120000 // (1024 * 1024), result['batches']
    compare.assert_same(redis70, valkey80, [(0, 0)])


def test_many_keys_several_workers(redis70, valkey80):
    """Many small keys over several workers: every key arrives, counts are exact."""
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(30000):
        pipe.set(b'key:%d' % i, b'%d' % i)
    pipe.execute()
    with Untouched(redis70, dbs=[]):
        result = migrate(redis70, valkey80, batch_size=1000, workers=3)
    assert result['totals']['copied'] == 30000 == valkey80.admin().dbsize()
    assert result['changed']


def test_target_down_fails_before_anything(redis70, run_module):
    load_dbs(redis70, [0])
    target = {'host': '127.0.0.1', 'port': _closed_port(), 'password': 'Down-Pass-9', 'connect_timeout': 2}
    with Untouched(redis70):
        result = run_module('kv_migrate', {'source': redis70.endpoint(), 'target': target})
    assert result['failed'] and result['error'] == 'refused', result['msg']
    assert 'target' in result['msg'] and str(target['port']) in result['msg']
    assert_no_secret(result, 'Down-Pass-9')


# --- exact counts (issue 15, items 1, 2 and 4) -----------------------------------------------------

class MigrateCalls:
    """Counts the MIGRATE calls sent through the collection's Wire and runs ``action`` after call ``after``.

    The seam is the one raw pipelining class every copy path sends through, so the test runs the engine as it
    is, whatever its inner structure.
    """

    def __init__(self, monkeypatch, after=None, action=None, before=None):
        self.calls = 0
        original = _wire.Wire.call_packed
        outer = self

        def call_packed(wire, data, count):
            migrate_call = b'\r\nMIGRATE\r\n' in data[:40]
            if migrate_call and outer.calls + 1 == before:
                action()
            replies = original(wire, data, count)
            if migrate_call:
                outer.calls += 1
                if outer.calls == after:
                    action()
            return replies

        monkeypatch.setattr(_wire.Wire, 'call_packed', call_packed)


def test_keys_the_target_lost_are_not_booked_as_expired(redis70, valkey80, monkeypatch):
    """The target loses what it was given mid-copy (FLUSHDB, a restart, a failover): the run fails with the
    missing count instead of calling keys expired that never had a TTL."""
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(b'kept:%d' % i, b'v%d' % i)  # no TTL: none of these can expire
    pipe.execute()
    target = valkey80.admin()
    MigrateCalls(monkeypatch, after=10, action=target.flushdb)
    with Untouched(redis70, dbs=[]):
        with pytest.raises(KVError) as err:
            migrate(redis70, valkey80, batch_size=100, workers=1)
    assert err.value.kind == 'lost', str(err.value)
    totals = err.value.partial['totals']
    holds = target.dbsize()
    assert totals['expired'] == 0 and totals['copied'] == holds, (totals, holds)
    assert totals['failed'] == 3000 - holds and str(3000 - holds) in str(err.value)


def test_slow_migrate_on_a_nonempty_target_keeps_the_source_connection_in_step(redis70, valkey80, monkeypatch):
    """A slow MIGRATE switches the sizing on while the reads of the next part are in flight (the comparing path
    of a rerun): the sizing must not read those replies."""
    monkeypatch.setattr(_migrate, 'SLOW_MIGRATE_S', 0.0)  # every call with more than one key counts as slow
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(b'key:%d' % i, b'%d' % i * 3)
    pipe.execute()
    valkey80.admin().set(b'key:0', b'000')  # the target db is not empty: the comparing path, identical key
    with Untouched(redis70, dbs=[]):
        result = migrate(redis70, valkey80, batch_size=1000, workers=1)
    assert result['totals']['failed'] == 0 and result['totals']['identical'] == 1
    assert result['totals']['copied'] == 2999
    compare.assert_same(redis70, valkey80, [(0, 0)])


def test_counts_are_exact_after_the_target_runs_out_of_memory(redis70, server_factory):
    """MIGRATE stops at the target's first OOM after writing part of the call: copied is what the target holds."""
    target = server_factory('valkey80', extra=['maxmemory 3mb', 'maxmemory-policy noeviction'])
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(3000):
        pipe.set(b'big:%d' % i, b'x' * 2000)
    pipe.execute()
    with Untouched(redis70, dbs=[]):
        with pytest.raises(KVError) as err:
            migrate(redis70, target, batch_size=100, workers=1)
    assert err.value.kind == 'oom', str(err.value)
    totals = err.value.partial['totals']
    assert totals['copied'] == target.admin().dbsize(), totals
