"""Sentinel-managed servers (one master, one replica, three sentinels with ACL users and a password) as the
source and as the target of playbooks/migrate.yml, and a failover forced in the middle of a copy.

The content is checked with tests/support/compare.py (not kv_verify); the secrets (the data nodes' and the
sentinels') must appear in no output.
"""

import json
import os
import threading

import pytest

from tests.support import compare, data
from tests.support.ansible import ansible_playbook, run_module
from tests.support.sentinel import PEER_PASSWORD, SENTINEL_PASSWORD, wait_for
from tests.support.servers import PASSWORDS, available

from tests.integration.test_playbook_migrate import PLAYBOOK, recap, write_inventory

pytestmark = pytest.mark.skipif(not available('redis70'), reason='redis-server 7.0 is not installed')


def no_secret(*outputs):
    secrets = dict(PASSWORDS, sentinel=SENTINEL_PASSWORD, sentinel_peer=PEER_PASSWORD)
    for output in outputs:
        for name, secret in secrets.items():
            assert secret not in output, 'the password of %s appeared in the output' % name


def load(server, dbs):
    return dict((db, len(data.load_all_types(server.admin(db), prefix=b'db%d:' % db, ttl_ms=600000)))
                for db in dbs)


def test_sentinel_source_and_target_through_the_playbook(sentinel_set, server_factory, tmp_path):
    """A Sentinel source into a standalone target, and a standalone source into a Sentinel target, in one play:
    --check writes nothing, the run copies every db (compared key by key with the master the sentinels name),
    the report names the node that was master, the second run changes nothing, no secret in any output."""
    sentinel_source = sentinel_set()
    sentinel_target = sentinel_set()
    plain_target = server_factory('valkey80')
    plain_source = server_factory('redis70')
    load(sentinel_source.master, [0, 3])
    load(plain_source, [0, 1])
    inventory = write_inventory(tmp_path, {
        'from-sentinel': (sentinel_source.endpoint(), plain_target.endpoint()),
        'to-sentinel': (plain_source.endpoint(), sentinel_target.endpoint()),
    }, kv_strategy='offline')
    source_writes = compare.source_writes(sentinel_source.master)

    dry = ansible_playbook(PLAYBOOK, inventory=inventory, check=True, args=['--forks', '2'])
    assert dry.returncode == 0, dry.stdout[-4000:]
    assert plain_target.admin().info('keyspace') == {}, 'check mode wrote to the target'
    assert sentinel_target.master.admin().info('keyspace') == {}, 'check mode wrote to the Sentinel target'
    assert not (tmp_path / 'reports').exists(), 'check mode wrote a report'

    first = ansible_playbook(PLAYBOOK, inventory=inventory, args=['--forks', '2'])
    assert first.returncode == 0, first.stdout[-4000:]
    summary = recap(first.stdout)
    assert summary['from-sentinel']['failed'] == 0 and summary['to-sentinel']['failed'] == 0
    compare.assert_same(sentinel_source.master, plain_target, [(0, 0), (3, 3)])
    compare.assert_same(plain_source, sentinel_target.master, [(0, 0), (1, 1)])
    report = json.loads((tmp_path / 'reports' / 'from-sentinel-latest.json').read_text())
    assert report['status'] == 'ok', report
    text = json.dumps(report)
    assert '127.0.0.1:%d' % sentinel_source.master.port in text, 'the report does not name the master used'
    report = json.loads((tmp_path / 'reports' / 'to-sentinel-latest.json').read_text())
    assert report['status'] == 'ok' and '127.0.0.1:%d' % sentinel_target.master.port in json.dumps(report)

    second = ansible_playbook(PLAYBOOK, inventory=inventory, args=['--forks', '2'])
    assert second.returncode == 0, second.stdout[-4000:]
    summary = recap(second.stdout)
    assert summary['from-sentinel']['changed'] == 0 and summary['to-sentinel']['changed'] == 0, second.stdout[-4000:]
    assert compare.source_writes(sentinel_source.master) == source_writes, 'the Sentinel source was written to'
    files = [path for path in tmp_path.rglob('*') if path.is_file() and path.suffix in ('.json', '.md', '.ckpt', '')]
    assert files, 'no report or record written'
    no_secret(dry.stdout, first.stdout, second.stdout,
              *[path.read_bytes().decode('utf-8', 'replace') for path in files if path.name != 'inventory.yml'])


def _wait_restore_blocked(server):
    """The copy's first RESTORE batch is waiting on ``server`` (paused for writes)."""
    def blocked():
        for client in server.admin().client_list():
            if client.get('user') == 'migrator' and client.get('cmd') in ('restore', 'restore-asking'):
                return True
        return False
    wait_for('the copy to send its first RESTORE', blocked)


def _copy_args(source, target, checkpoint):
    return dict(source=source, target=target, checkpoint=checkpoint, batch_size=50, workers=1)


@pytest.mark.parametrize('side', ['source', 'target'])
def test_failover_mid_copy_stops_the_step_and_the_rerun_completes(sentinel_set, server_factory, tmp_path, side):
    """kv_dump_restore between a Sentinel group and a standalone server; while its first batch waits (the node it
    writes to is paused for writes), the Sentinel group fails over.  The step stops with kind failover, naming
    the old and the new master; the rerun with the same checkpoint copies everything into the right node."""
    # A master paused for writes also holds the sentinels' hello messages (PUBLISH): with the usual small
    # down-after-milliseconds they would fail it over on their own.  This failover is forced, when the test says.
    group = sentinel_set(down_after_ms=60000)
    plain = server_factory('redis70')  # the same version on both sides: the copy writes with RESTORE
    checkpoint = str(tmp_path / 'copy.ckpt')
    if side == 'source':
        source_node, source_ep = group.master, group.endpoint()
        target_node, target_ep = plain, plain.endpoint()
    else:
        source_node, source_ep = plain, plain.endpoint()
        target_node, target_ep = group.master, group.endpoint()
    loaded = load(source_node, [0])
    with source_node.admin().pipeline(transaction=False) as pipe:  # enough batches to stop in the middle
        for i in range(3000):
            pipe.set(b'bulk:%d' % i, b'v' * 20)
        pipe.execute()
    group.wait_replica_synced(group.master, group.replica)

    outcome = {}

    def copy():
        outcome['result'] = run_module('kv_dump_restore', _copy_args(source_ep, target_ep, checkpoint))

    target_node.admin().execute_command('CLIENT', 'PAUSE', '120000', 'WRITE')
    worker = threading.Thread(target=copy)
    worker.start()
    try:
        _wait_restore_blocked(target_node)
        old, new = group.failover()
    finally:
        target_node.admin().execute_command('CLIENT', 'UNPAUSE')
        worker.join(600)
    result = outcome['result']
    assert result.get('failed'), result
    assert result['error'] == 'failover', result
    assert '127.0.0.1:%d' % old.port in result['msg'] and '127.0.0.1:%d' % new.port in result['msg'], result['msg']
    assert result['error_details']['new_master'] == '127.0.0.1:%d' % new.port
    assert os.path.exists(checkpoint), 'the stopped step left no checkpoint to resume from'

    group.wait_settled()  # the old master is a replica of the new one now
    rerun = run_module('kv_dump_restore', _copy_args(source_ep, target_ep, checkpoint))
    assert not rerun.get('failed'), rerun
    new_source = group.master if side == 'source' else plain
    new_target = plain if side == 'source' else group.master
    assert new_target.port == (plain.port if side == 'source' else new.port)
    compare.assert_same(new_source, new_target, [(0, 0)])
    assert new_target.admin().dbsize() == loaded[0] + 3000
    again = run_module('kv_dump_restore', _copy_args(source_ep, target_ep, checkpoint))
    assert not again.get('failed') and again['changed'] is False, again
    no_secret(json.dumps(result), json.dumps(rerun), json.dumps(again), rerun['_output'])


def _record(path):
    with open(path) as fh:
        return json.load(fh)


def test_kv_isolate_and_kv_sync_follow_the_sentinel_master(sentinel_set, server_factory, tmp_path):
    """kv_isolate pauses the node that is master and says which; kv_sync follows the master, a failover ends the
    follower with kind failover, state=started resumes it on the new master, the drain leaves the target equal
    to the new master (compared key by key)."""
    group = sentinel_set(down_after_ms=60000)  # the pause holds the sentinels' hellos: no failover of their own
    target = server_factory('redis70')
    master = group.master
    load(master, [0])

    isolation = str(tmp_path / 'isolation.json')
    paused = run_module('kv_isolate', {'server': group.endpoint(), 'mode': 'pause', 'record': isolation,
                                       'pause_ms': 1500, 'verify_window_ms': 300})
    assert not paused.get('failed'), paused.get('msg')
    assert paused['endpoint'] == '127.0.0.1:%d' % master.port
    assert _record(isolation)['node'] == '127.0.0.1:%d' % master.port
    released = run_module('kv_isolate', {'server': group.endpoint(), 'mode': 'pause', 'record': isolation,
                                         'state': 'released'})
    assert not released.get('failed'), released.get('msg')

    record = str(tmp_path / 'sync.json')
    args = dict(source=group.endpoint(), target=target.endpoint(), record=record, started_timeout=120, max_lag=65536)
    try:
        started = run_module('kv_sync', args)
        assert not started.get('failed'), started.get('msg')
        master.admin().set(b'after:start', b'1')
        old, new = group.failover()
        failed = wait_for('the follower to stop on the failover',
                          lambda: _record(record).get('last_error_kind') == 'failover' and _record(record))
        assert '127.0.0.1:%d' % new.port in failed['last_error'], failed['last_error']
        group.wait_settled()
        new.admin().set(b'after:failover', b'2')

        resumed = run_module('kv_sync', args)
        assert not resumed.get('failed'), resumed.get('msg')
        stopped = run_module('kv_sync', dict(args, state='stopped'))
        assert not stopped.get('failed'), stopped.get('msg')
        compare.assert_same(new, target, [(0, 0)])
        assert target.admin().get(b'after:failover') == b'2' and target.admin().get(b'after:start') == b'1'
        no_secret(json.dumps(started), json.dumps(resumed), json.dumps(stopped), open(record).read(),
                  stopped['_output'])
    finally:
        run_module('kv_sync', dict(args, state='absent'))


def test_read_from_replica_copies_from_the_replica_and_refuses_one_that_lags(sentinel_set, server_factory):
    """source.read_from: replica reads from the replica the sentinels list (the result names it) and the target
    equals the master; a replica whose link to the master is down and that is behind is refused before anything
    is written (error replica_lag), naming the replica and its lag."""
    group = sentinel_set()
    target = server_factory('redis70')
    load(group.master, [0])
    group.wait_replica_synced(group.master, group.replica)
    replica = group.replica
    source = group.endpoint(read_from='replica')
    copied = run_module('kv_dump_restore', dict(source=source, target=target.endpoint()))
    assert not copied.get('failed'), copied.get('msg')
    assert copied['source']['address'] == '127.0.0.1:%d' % replica.port
    compare.assert_same(group.master, target, [(0, 0)])

    # cut the replica off (it cannot authenticate any more) and write on the master: the replica falls behind
    other = server_factory('redis70')
    replica.admin().config_set('masterauth', 'not-the-password')
    replica.admin().client_kill_filter(_type='master')
    wait_for('the replica link to go down',
             lambda: replica.admin().info('replication').get('master_link_status') == 'down')
    group.master.admin().set(b'late', b'x' * 4096)
    refused = run_module('kv_dump_restore', dict(source=dict(source, replica_max_lag=1024),
                                                 target=other.endpoint()))
    assert refused.get('failed') and refused['error'] == 'replica_lag', refused
    assert '127.0.0.1:%d' % replica.port in refused['msg'], refused['msg']
    assert other.admin().dbsize() == 0, 'a refused copy wrote to the target'
    no_secret(json.dumps(copied), json.dumps(refused), refused['_output'])
