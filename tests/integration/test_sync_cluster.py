"""kv_sync with clusters, against real clusters on loopback (tests/support/cluster.py): a cluster source (one
follower per master), a cluster target (every RESTORE and command routed by slot), and both (3 -> 2 masters).

Writers write during the snapshot and the follow, on every master; after ``CLIENT PAUSE WRITE`` (on every
source master) and ``state: stopped`` the target must equal the source by tests/support/compare.py (type-aware
reads on the master that holds each key), never by kv_verify.  Every test removes its followers at the end.
"""

import os
import signal
import threading
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import key_slot
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._sync_cluster import master_problem
from ansible_collections.kvtools.migration.plugins.module_utils._sync_follow import read_record
from ansible_collections.kvtools.migration.plugins.module_utils._sync_parts import live_sync
from tests.conftest import assert_no_secret
from tests.integration.test_cluster import TAGGED_KEYS, load
from tests.integration.test_kv_sync import DEFAULTS, fast_source
from tests.support import compare

SCRIPT = b"redis.call('INCR', KEYS[1]); redis.call('HSET', KEYS[2], 'n', ARGV[1]); return 1"


def load_many(client, count=3000):
    """``count`` small keys (every tenth with a TTL) on top of tests/integration/test_cluster.load."""
    keys = load(client)
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        pipe.set(b'many:%d' % n, b'v' * 20, ex=3600 if n % 10 == 0 else None)
    pipe.execute()
    return keys


def engine(args, check=False):
    """kv_sync's engine in this process (what the module runs)."""
    params = dict(DEFAULTS)
    params.update(args)
    try:
        return live_sync(Endpoint(params['source'], 'source'), Endpoint(params['target'], 'target'), params,
                         check_mode=check)
    except KVError as exc:
        out = dict(getattr(exc, 'partial', None) or {})
        out.update(exc.to_result())
        out['failed'] = True
        return out


def admins(found):
    """The master clients of a cluster (tests/support/cluster.Cluster) or the one client of a server."""
    nodes = getattr(found, 'nodes', None)
    return [node.admin() for node in nodes] if nodes is not None else [found.admin()]


def data_of(found):
    nodes = getattr(found, 'nodes', None)
    return [node.admin() for node in nodes] if nodes is not None else found.admin()


def writer_client(found):
    return found.client() if getattr(found, 'nodes', None) is not None else found.admin()


def make_fast(found):
    for node in getattr(found, 'nodes', None) or [found]:
        fast_source(node)


class Writer(threading.Thread):
    """Writes of every type (TTLs, deletes, expiries, scripts replicated as MULTI/EXEC, awkward names) through
    ``client`` - a cluster client spreads them over every master.  ``cross_slot`` (a standalone source): also
    DEL and MSET across slots and a transaction across slots."""

    def __init__(self, client, cross_slot=False):
        super().__init__(daemon=True)
        self.c = client
        self.cross_slot = cross_slot
        self.stop = False
        self.ops = 0
        self.error = None

    def run(self):
        c = self.c
        i = 0
        try:
            while not self.stop:
                c.set(b'w:%d' % (i % 200), b'v%d' % i)
                c.incr(b'cnt:{%d}' % (i % 30))
                c.hset(b'wh:{%d}' % (i % 30), b'f%d' % (i % 5), i)
                c.rpush(b'wl:%d' % (i % 20), i)
                if i % 7 == 0:
                    c.lpop(b'wl:%d' % (i % 20))
                c.sadd(b'ws:%d' % (i % 20), i % 50)
                c.zadd(b'wz:%d' % (i % 20), {b'm%d' % (i % 9): i})
                c.xadd(b'wx:%d' % (i % 5), {b'i': b'%d' % i})
                c.set(b'wt:%d' % (i % 50), b'x', ex=600)
                c.set(b'aw \n"*\x00\xff:%d' % (i % 10), b'a')
                if i % 5 == 0:
                    c.expire(b'w:%d' % ((i + 3) % 200), 900)
                if i % 11 == 0:
                    c.delete(b'w:%d' % ((i + 7) % 200))
                if i % 13 == 0:
                    c.set(b'short:%d' % i, b's', px=150)  # expires on the source: a DEL in the stream
                c.eval(SCRIPT, 2, b'{t%d}a' % (i % 10), b'{t%d}b' % (i % 10), i)
                if self.cross_slot:
                    c.delete(b'w:%d' % ((i + 1) % 200), b'w:%d' % ((i + 2) % 200), b'nothing')
                    c.mset({b'm:a%d' % (i % 40): b'%d' % i, b'm:b%d' % (i % 40): b'%d' % i})
                    pipe = c.pipeline(transaction=True)
                    pipe.incr(b'tx:a')
                    pipe.incr(b'tx:b')
                    pipe.execute()
                i += 1
                self.ops = i
        except Exception as exc:  # reported by the test
            self.error = exc


def wait_ops(writer, ops, timeout=120):
    deadline = time.time() + timeout
    while writer.ops < ops and writer.error is None and time.time() < deadline:
        time.sleep(0.01)
    assert writer.error is None, writer.error
    assert writer.ops >= ops


def pause(found, ms=120000):
    for client in admins(found):
        client.execute_command('CLIENT', 'PAUSE', ms, 'WRITE')


def unpause(found):
    for client in admins(found):
        try:
            client.execute_command('CLIENT', 'UNPAUSE')
        except Exception:
            pass


@pytest.fixture
def followed(tmp_path):
    """``followed(source, target)`` -> args; removes the followers (state=absent) and unpauses at the end."""
    made = []

    def make(source, target, name='sync.json', **extra):
        # a cluster target: the user may switch import mode on (CONFIG SET), which a live copy into a cluster needs
        target_ep = target.endpoint(user='admin') if getattr(target, 'nodes', None) else target.endpoint()
        args = dict(source=source.endpoint(), target=target_ep, record=str(tmp_path / name),
                    started_timeout=180, max_lag=65536)
        args.update(extra)
        made.append((source, args))
        return args
    yield make
    for source, args in made:
        unpause(source)
        engine(dict(args, state='absent'))


def live_copy(source, target, args, cross_slot=False, mid=None):
    """Start while writing, write more, (``mid(writer)``), pause every source master, drain, compare."""
    make_fast(source)
    writer = Writer(writer_client(source), cross_slot=cross_slot)
    writer.start()
    try:
        wait_ops(writer, 5)
        started = engine(args)
        assert not started.get('failed'), started.get('msg')
        assert started['phase'] == 'streaming' and started['changed'] is True
        wait_ops(writer, writer.ops + 40)
        if mid is not None:
            mid(writer)
        pause(source)
        writer.stop = True
        writer.join(30)
        assert writer.error is None, writer.error
        stopped = engine(dict(args, state='stopped'))
        assert not stopped.get('failed'), stopped.get('msg')
        assert stopped['phase'] == 'stopped'
        assert compare.differences(data_of(source), data_of(target), deep=True) == []
        return started, stopped
    finally:
        writer.stop = True
        unpause(source)


def kill_part_and_resume(args, status, writer, index):
    """SIGKILL the follower of part ``index``; the rerun restarts that one only (the others keep their pid)."""
    part = read_record(status['parts'][index]['record'])
    os.kill(part['pid'], signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(part['pid'], 0)
        except OSError:
            break
        time.sleep(0.02)
    wait_ops(writer, writer.ops + 20)
    resumed = engine(args)
    assert not resumed.get('failed'), resumed.get('msg')
    assert resumed['changed'] is True and resumed['phase'] == 'streaming'
    pids = [p['pid'] for p in resumed['parts']]
    assert pids[index] != part['pid']
    assert [p for i, p in enumerate(pids) if i != index] == [p['pid'] for i, p in enumerate(status['parts']) if i != index]
    wait_ops(writer, writer.ops + 20)
    return resumed


def test_standalone_into_a_cluster(redis70, cluster_of, followed):
    """Redis 7.0 -> a 3-master Valkey 9.1 cluster (import mode on every master): check mode writes nothing, the
    snapshot and the stream are routed by slot, DEL/MSET and a transaction across slots are split per slot."""
    target = cluster_of('valkey91')
    load_many(redis70.admin())
    args = followed(redis70, target)
    plan = engine(args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert plan['changed'] is True and plan['phase'] is None
    assert sum(int(c.dbsize()) for c in admins(target)) == 0, 'check mode wrote to the cluster'
    started, stopped = live_copy(redis70, target, args, cross_slot=True)
    assert started['ttl_mode'] == 'import' and started['target_cluster'] is True
    assert stopped['commands_split'] > 0
    assert stopped['totals']['copied'] == started['totals']['copied'] > 3000
    assert all(int(c.dbsize()) for c in admins(target)), 'a master got no key'
    for client in admins(target):  # the per-master offset markers are gone after the drain
        assert not list(client.scan_iter(match=b'kvtools:sync:offset:*'))
        assert client.config_get('import-mode')['import-mode'] == 'no'
    again = engine(dict(args, state='stopped'))
    assert again['changed'] is False and not again.get('failed')
    assert_no_secret(stopped)


def test_cross_slot_command_into_a_cluster_is_refused(redis70, cluster_of, followed):
    """A command across slots that cannot be split (RENAME) stops the follower with an error naming it; the
    keys before it are on the target, nothing is dropped silently."""
    target = cluster_of('valkey91')
    make_fast(redis70)
    source = redis70.admin()
    source.set(b'a', b'1')
    args = followed(redis70, target)
    started = engine(args)
    assert not started.get('failed'), started.get('msg')
    source.set(b'before', b'x')
    source.delete(b'a', b'before-not', b'zz')  # split per slot: applied
    source.set(b'a', b'2')
    assert key_slot(b'a') != key_slot(b'b')
    source.rename(b'a', b'b')
    deadline = time.time() + 60
    rec = {}
    while time.time() < deadline:
        rec = read_record(args['record']) or {}
        if rec.get('phase') == 'failed':
            break
        time.sleep(0.05)
    assert rec.get('phase') == 'failed' and rec.get('last_error_kind') == 'crossslot', rec.get('last_error')
    assert 'RENAME' in rec['last_error'] and '2 hash slots' in rec['last_error']
    assert target.admin_for(b'before').get(b'before') == b'x'
    assert target.admin_for(b'a').get(b'a') == b'2'


def test_cluster_into_standalone_drain_rerun_and_resume(cluster_of, valkey80, followed):
    """A 3-master Redis 7.0 cluster -> a standalone Valkey 8.0 (hold mode): one follower per master, a rerun
    is changed=false, a killed follower is resumed alone, the drain waits for every master."""
    source = cluster_of('redis70')
    load_many(source.client())
    args = followed(source, valkey80)
    plan = engine(args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert len(plan['parts']) == 3 and int(valkey80.admin().dbsize()) == 0

    def mid(writer):
        again = engine(args)
        assert not again.get('failed'), again.get('msg')
        assert again['changed'] is False and again['phase'] == 'streaming'
        assert len(again['parts']) == 3
        dry = engine(args, check=True)
        assert not dry.get('failed') and dry['changed'] is False and dry['phase'] == 'streaming'
        kill_part_and_resume(args, again, writer, 1)

    started, stopped = live_copy(source, valkey80, args, mid=mid)
    assert started['ttl_mode'] == 'hold' and len(started['parts']) == 3
    assert sum(p['totals']['copied'] for p in started['parts']) == started['totals']['copied']
    assert all(p['offset'] is not None for p in started['parts'])
    assert set(stopped['final_offsets']) == set('127.0.0.1:%d' % n.port for n in source.nodes)
    for part, node in zip(stopped['parts'], sorted(source.nodes, key=lambda n: n.port)):
        assert part['final_offset'] is not None and part['phase'] == 'stopped'
    assert not list(valkey80.admin().scan_iter(match=b'kvtools:sync:offset:*'))
    assert engine(dict(args, state='stopped'))['changed'] is False


@pytest.mark.parametrize('flavour', ['valkey91'])
def test_cluster_3_into_2_masters(cluster_of, flavour, followed):
    """Three masters into two: each source master's follower routes its keys to the target master of their slot."""
    source = cluster_of(flavour, masters=3)
    target = cluster_of(flavour, masters=2)
    load_many(source.client())
    for name in TAGGED_KEYS:
        assert source.client().exists(name)
    args = followed(source, target)

    def mid(writer):  # into a cluster a follower restarts with a new snapshot of its master's slots
        resumed = kill_part_and_resume(args, engine(args), writer, 2)
        assert resumed['parts'][2]['full_resyncs'] == 1 and resumed['parts'][0]['full_resyncs'] == 0

    started, stopped = live_copy(source, target, args, mid=mid)
    assert len(started['parts']) == 3 and started['ttl_mode'] == 'import'
    assert stopped['keys_written_since_snapshot'] > 0
    removed = engine(dict(args, state='absent'))
    assert removed['changed'] is True and len(removed['parts']) == 3
    assert engine(dict(args, state='absent'))['changed'] is False


def test_source_reshard_stops_the_follow_and_a_rerun_resyncs(cluster_factory, valkey80, followed):
    """A slot moved away from a followed master: its follower stops and names it; the drain refuses; a rerun
    follows the new owners from new snapshots and the copy ends exact."""
    source = cluster_factory('redis70')
    load_many(source.client())
    make_fast(source)
    args = followed(source, valkey80)
    started = engine(args)
    assert not started.get('failed'), started.get('msg')
    slot = key_slot(b'k:1')
    here = source.node_for_slot(slot)
    there = next(n for n in source.nodes if n is not here)
    address = '127.0.0.1:%d' % here.port
    ranges = [[a, b] for a, b, port in source.slot_view(here.admin()) if port == here.port]
    assert master_problem(here.admin(), address, ranges) is None
    there.admin().execute_command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', here.admin().execute_command('CLUSTER', 'MYID'))
    here.admin().execute_command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', there.admin().execute_command('CLUSTER', 'MYID'))
    assert 'are being migrated' in master_problem(here.admin(), address, ranges)
    source.move_slot(slot, here, there)
    source.wait_ok()
    assert 'changed (now ' in master_problem(here.admin(), address, ranges)
    source.client().set(b'k:1', b'after the move')
    deadline = time.time() + 60
    failed = None
    while time.time() < deadline and failed is None:
        for part in started['parts']:
            rec = read_record(part['record']) or {}
            if rec.get('phase') == 'failed':
                failed = rec
        time.sleep(0.05)
    assert failed is not None and failed['last_error_kind'] == 'topology', failed
    expected = ('slots of the followed master', 'being migrated', 'by MIGRATE')
    assert any(words in failed['last_error'] for words in expected), failed['last_error']
    drained = engine(dict(args, state='stopped'))
    assert drained.get('failed')
    again = engine(args)
    assert not again.get('failed'), again.get('msg')
    assert again['topology_changed'] is True and again['changed'] is True
    pause(source)
    stopped = engine(dict(args, state='stopped'))
    assert not stopped.get('failed'), stopped.get('msg')
    assert compare.differences(data_of(source), valkey80.admin(), deep=True) == []


def _add_replica(found, master):
    """A replica of ``master`` joined to the cluster ``found`` (a test Server of its own, cleaned by the caller)."""
    from tests.support import servers
    bus = servers.free_port()
    replica = servers.Server(found.flavour, name='%s-replica' % found.name,
                             extra=['cluster-enabled yes', 'cluster-config-file nodes.conf', 'cluster-node-timeout 5000',
                                    'cluster-port %d' % bus]).start()
    try:
        replica.admin().config_set('masteruser', 'admin')  # the master's ACL users: the replica logs in as admin
        replica.admin().config_set('masterauth', servers.PASSWORDS['admin'])
        found.nodes[0].admin().execute_command('CLUSTER', 'MEET', '127.0.0.1', replica.port, bus)
        master_id = master.admin().execute_command('CLUSTER', 'MYID')
        deadline = time.time() + 60
        while True:  # once: each CLUSTER REPLICATE restarts the replication link
            try:
                replica.admin().execute_command('CLUSTER', 'REPLICATE', master_id)
                break
            except Exception:  # the replica does not know the master yet
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        while replica.admin().info('replication').get('master_link_status') != 'up':
            assert time.time() < deadline, 'the replica did not sync'
            time.sleep(0.1)
        return replica
    except Exception:
        replica.cleanup()
        raise


def test_source_failover_stops_the_follow_and_a_rerun_follows_the_new_master(cluster_factory, valkey80, followed):
    """A failover of a followed master (its replica takes over, CLUSTER FAILOVER): the follower of the old master
    stops with error topology naming it, the drain refuses, a rerun follows the new master from new snapshots."""
    source = cluster_factory('redis70')
    old = source.nodes[1]
    replica = _add_replica(source, old)
    try:
        source.wait_ok()
        load_many(source.client())
        make_fast(source)
        fast_source(replica)
        args = followed(source, valkey80)
        started = engine(args)
        assert not started.get('failed'), started.get('msg')
        assert len(started['parts']) == 3
        replica.admin().execute_command('CLUSTER', 'FAILOVER')
        deadline = time.time() + 60
        while replica.admin().execute_command('ROLE')[0] not in (b'master', 'master'):
            assert time.time() < deadline, 'the failover did not happen'
            time.sleep(0.05)
        failed = None
        deadline = time.time() + 60
        while time.time() < deadline and failed is None:
            for part in started['parts']:
                rec = read_record(part['record']) or {}
                if rec.get('phase') == 'failed':
                    failed = rec
            time.sleep(0.05)
        assert failed is not None and failed['last_error_kind'] == 'topology', failed
        assert 'is no longer a master' in failed['last_error'] and str(old.port) in failed['last_error']
        drained = engine(dict(args, state='stopped'))
        assert drained.get('failed') and 'not running' in drained['msg']
        masters = [replica] + [n for n in source.nodes if n is not old]
        source.client().set(b'after:failover', b'x')  # a write to the new master
        again = engine(args)
        assert not again.get('failed'), again.get('msg')
        assert again['topology_changed'] is True
        assert '127.0.0.1:%d' % replica.port in again['offsets']
        for node in masters:
            node.admin().execute_command('CLIENT', 'PAUSE', 120000, 'WRITE')
        stopped = engine(dict(args, state='stopped'))
        assert not stopped.get('failed'), stopped.get('msg')
        assert compare.differences([n.admin() for n in masters], valkey80.admin(), deep=True) == []
    finally:
        for node in [replica] + source.nodes:
            try:
                node.admin().execute_command('CLIENT', 'UNPAUSE')
            except Exception:
                pass
        replica.cleanup()
