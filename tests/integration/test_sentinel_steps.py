"""Sentinel failovers between two steps (kv_sync's started / stopped, kv_isolate's isolated / released).

Real servers: one master, one replica, three sentinels with ACL users and a password (tests/support/sentinel.py).
Failovers are forced with SENTINEL FAILOVER; every wait is on a condition.  A follower that has not seen the
failover yet (it checks once a second, or the host slept) is made so deterministically: it is stopped with
SIGSTOP while the failover happens.
"""

import json
import os
import signal

import pytest
import redis

from tests.support import compare
from tests.support.ansible import run_module
from tests.support.pause_probe import WriteProbe, write_blocked
from tests.support.sentinel import wait_for
from tests.support.servers import available

from tests.integration.test_playbook_sentinel import load, no_secret

pytestmark = pytest.mark.skipif(not available('redis70'), reason='redis-server 7.0 is not installed')


def _record(path):
    with open(path) as fh:
        return json.load(fh)


def _running(pid):
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        with open('/proc/%d/stat' % pid) as fh:
            return fh.read().rsplit(')', 1)[-1].split()[0] != 'Z'
    except (IOError, OSError):
        return False


def _address(server):
    return '127.0.0.1:%d' % server.port


def test_kv_sync_failover_between_steps_is_refused_then_resumed_on_the_new_master(
        sentinel_set, server_factory, tmp_path):
    """state=started records the master it follows; a failover the follower has not seen (it is stopped) makes
    state=stopped fail with kind failover naming both masters, draining nothing; state=started then stops the
    stale follower, resumes on the new master and says how (PSYNC continue or a new snapshot); the drain leaves
    the target equal to the new master, the writes made on both masters included."""
    group = sentinel_set(down_after_ms=60000)  # only the forced failover
    target = server_factory('redis70')
    master = group.master
    load(master, [0])
    record = str(tmp_path / 'sync.json')
    args = dict(source=group.endpoint(), target=target.endpoint(), record=record, started_timeout=120,
                max_lag=65536)
    follower = None
    try:
        started = run_module('kv_sync', args)
        assert not started.get('failed'), started.get('msg')
        rec = _record(record)
        assert rec['source_node'] == _address(master) and rec['target_node'] == _address(target), rec
        master.admin().set(b'before:failover', b'1')
        wait_for('the follower to apply the write', lambda: target.admin().get(b'before:failover') == b'1')
        group.wait_replica_synced(master, group.replica)

        follower = rec['pid']
        os.kill(follower, signal.SIGSTOP)  # it sees nothing of what follows
        old, new = group.failover()
        group.wait_settled()
        new.admin().set(b'after:failover', b'2')

        refused = run_module('kv_sync', dict(args, state='stopped'))
        assert refused.get('failed') and refused['error'] == 'failover', refused
        assert _address(old) in refused['msg'] and _address(new) in refused['msg'], refused['msg']
        assert refused['error_details']['moved'] == [dict(side='source', old_master=_address(old),
                                                          new_master=_address(new))]
        assert _record(record)['state'] == 'started', 'the refused drain stopped the follower'
        assert target.admin().get(b'after:failover') is None

        # the cut-over path: it pauses the master of the moment, the drain refuses, the pause is released
        cut = run_module('kv_cutover', dict(source=group.endpoint(), target=target.endpoint(), sync_record=record,
                                            drain_timeout=5, pause_ms=20000))
        assert cut.get('failed') and cut['error'] == 'failover', cut
        assert _address(old) in cut['msg'] and _address(new) in cut['msg'], cut['msg']
        assert not write_blocked(new), 'the failed cut-over left the new master paused'
        assert _record(record)['state'] == 'started'

        check = run_module('kv_sync', args, check=True)
        assert not check.get('failed') and check['changed'] is True, check
        assert check['failover'][0]['new_master'] == _address(new), check
        assert any(_address(new) in line for line in check['plan']), check['plan']

        os.kill(follower, signal.SIGCONT)
        resumed = run_module('kv_sync', args)
        follower = None
        assert not resumed.get('failed'), resumed.get('msg')
        assert resumed['changed'] is True
        assert resumed['failover'] == [dict(side='source', old_master=_address(old), new_master=_address(new))]
        assert resumed['resumed_by'] in ('continue', 'snapshot'), resumed
        assert _address(old) in resumed['msg'] and _address(new) in resumed['msg'], resumed['msg']
        rec = _record(record)
        assert rec['source_node'] == _address(new), rec
        if resumed['resumed_by'] == 'continue':
            assert rec['continued'] >= 1 and rec['full_resyncs'] == 0, rec
        else:
            assert rec['full_resyncs'] >= 1, rec
        print('kv_sync resumed after the failover by: %s' % resumed['resumed_by'])

        again = run_module('kv_sync', args)
        assert not again.get('failed') and again['changed'] is False, again
        new.admin().set(b'after:resume', b'3')
        stopped = run_module('kv_sync', dict(args, state='stopped'))
        assert not stopped.get('failed'), stopped.get('msg')
        compare.assert_same(new, target, [(0, 0)])
        assert [target.admin().get(k) for k in (b'before:failover', b'after:failover', b'after:resume')] == \
            [b'1', b'2', b'3']
        no_secret(json.dumps(started), json.dumps(refused), json.dumps(resumed), json.dumps(stopped),
                  open(record).read(), stopped['_output'])
    finally:
        if follower is not None:
            os.kill(follower, signal.SIGCONT)
        run_module('kv_sync', dict(args, state='absent'))


APP_PASSWORD = 'app-Secret-9'


def _app(server):
    return redis.Redis(host='127.0.0.1', port=server.port, username='app', password=APP_PASSWORD, socket_timeout=10)


def _app_refused(server):
    try:
        _app(server).ping()  # a replica refuses writes anyway: what matters is that the user cannot log in
    except (redis.AuthenticationError, redis.ConnectionError):
        return True
    return False


def test_kv_isolate_acl_isolates_every_node_so_a_failover_takes_no_app_write(sentinel_set, tmp_path):
    """mode=acl on a Sentinel endpoint switches the application users off on the master and on the replica (ACLs
    are per node); after a failover the new master refuses the app too, the re-run names the old and the new
    master and changes nothing, the release sets every node back to its own prior state."""
    group = sentinel_set(down_after_ms=60000)
    master, replica = group.master, group.replica
    for node in group.nodes:
        admin = node.admin()
        admin.execute_command('ACL', 'SETUSER', 'app', 'on', '>' + APP_PASSWORD, '~*', '+@all')
    master.admin().execute_command('ACL', 'SETUSER', 'app_off', 'off', '>' + APP_PASSWORD, '~*', '+@all')
    assert _app(master).set(b'app:before', b'1')
    record = str(tmp_path / 'acl.json')
    args = {'server': group.endpoint('admin'), 'mode': 'acl', 'users': ['app', 'app_off'], 'record': record,
            'verify_window_ms': 300}

    # a user the replica does not know: the step fails naming the replica, and nothing stays isolated
    refused = run_module('kv_isolate', args)
    assert refused.get('failed') and refused['error'] == 'config', refused
    assert _record(record)['state'] == 'released'
    assert _address(replica) in refused['msg'] and 'app_off' in refused['msg'], refused['msg']
    assert 'nothing stays isolated' in refused['msg'], refused['msg']
    assert not _app_refused(master) and not _app_refused(replica)
    replica.admin().execute_command('ACL', 'SETUSER', 'app_off', 'off', '>' + APP_PASSWORD, '~*', '+@all')

    plan = run_module('kv_isolate', args, check=True)
    assert not plan.get('failed') and plan['changed'] is True, plan
    assert _record(record)['state'] == 'released'  # the failed attempt's: check mode wrote nothing new
    assert not _app_refused(master) and not _app_refused(replica)

    first = run_module('kv_isolate', args)
    assert not first.get('failed'), first.get('msg')
    assert first['changed'] is True and first['endpoint'] == _address(master)
    assert sorted(n['address'] for n in first['nodes']) == sorted([_address(master), _address(replica)])
    assert {u['name']: u['was_enabled'] for u in first['users']} == {'app': True, 'app_off': False}
    assert _app_refused(master) and _app_refused(replica)

    old, new = group.failover()
    group.wait_settled()
    assert _app_refused(new), 'the promoted replica takes the applications\' writes'
    again = run_module('kv_isolate', args)
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is False, again
    assert again['master_moved'] == dict(old_master=_address(old), new_master=_address(new))
    assert again['endpoint'] == _address(new) and again['verify']['stopped'] is True
    assert _address(old) in again['msg'] and _address(new) in again['msg']

    release = dict(args, state='released')
    released = run_module('kv_isolate', release)
    assert not released.get('failed'), released.get('msg')
    assert released['changed'] is True and released['master_moved']['new_master'] == _address(new)
    for node in (old, new):
        assert _app(node).ping(), node
        assert b'off' in node.admin().execute_command('ACL', 'GETUSER', 'app_off')[b'flags']
    assert _app(new).set(b'app:after', b'2')
    assert run_module('kv_isolate', release)['changed'] is False
    no_secret(json.dumps(first), json.dumps(again), json.dumps(released), open(record).read())


def test_sentinels_and_data_nodes_over_tls(sentinel_set, server_factory, certs, tmp_path):
    """Sentinels and data nodes that speak TLS only (tls-port, tls-replication yes), reached with the endpoint's
    TLS options and the sentinels' own: the copy reads the master the sentinels name, read_from replica reads the
    replica; without the sentinels' TLS the step fails clearly, naming the sentinels; after a failover the copy
    goes to the new master; the ACL isolation reaches every node."""
    group = sentinel_set(certs=certs, down_after_ms=60000)
    assert all(node.tls for node in group.nodes)
    target = server_factory('redis70')
    master = group.master
    loaded = load(master, [0])
    group.wait_replica_synced(master, group.replica)

    copied = run_module('kv_dump_restore', dict(source=group.endpoint(), target=target.endpoint()))
    assert not copied.get('failed'), copied.get('msg')
    assert copied['source']['address'] == _address(master)
    compare.assert_same(master, target, [(0, 0)])

    from_replica = server_factory('redis70')
    replica_copy = run_module('kv_dump_restore', dict(source=group.endpoint(read_from='replica'),
                                                      target=from_replica.endpoint()))
    assert not replica_copy.get('failed'), replica_copy.get('msg')
    assert replica_copy['source']['address'] == _address(group.replica)
    assert from_replica.admin().dbsize() == loaded[0]

    plain_sentinels = group.endpoint()
    plain_sentinels['sentinel'] = dict(plain_sentinels['sentinel'], tls=False)
    refused = run_module('kv_dump_restore', dict(source=plain_sentinels, target=server_factory('redis70').endpoint()))
    assert refused.get('failed'), refused
    assert 'sentinel' in refused['msg'] and 'no sentinel answered' in refused['msg'], refused['msg']

    old, new = group.failover()
    group.wait_settled()
    new.admin().set(b'after:failover', b'1')
    again = run_module('kv_dump_restore', dict(source=group.endpoint(), target=target.endpoint(),
                                               on_conflict='replace'))
    assert not again.get('failed'), again.get('msg')
    assert again['source']['address'] == _address(new)
    compare.assert_same(new, target, [(0, 0)])

    record = str(tmp_path / 'acl.json')
    for node in group.nodes:
        node.admin().execute_command('ACL', 'SETUSER', 'app', 'on', '>' + APP_PASSWORD, '~*', '+@all')
    isolated = run_module('kv_isolate', {'server': group.endpoint('admin'), 'mode': 'acl', 'users': ['app'],
                                         'record': record, 'verify_window_ms': 0})
    assert not isolated.get('failed'), isolated.get('msg')
    assert sorted(n['address'] for n in isolated['nodes']) == sorted([_address(old), _address(new)])
    released = run_module('kv_isolate', {'server': group.endpoint('admin'), 'mode': 'acl', 'state': 'released',
                                         'record': record})
    assert not released.get('failed') and released['changed'] is True, released
    no_secret(json.dumps(copied), json.dumps(refused), json.dumps(again), refused['_output'])


def test_kv_isolate_pause_follows_a_failover(sentinel_set, tmp_path):
    """mode=pause on a Sentinel endpoint pauses the master of the moment; after a failover the renewer pauses the
    new master too (and writes it down), the re-run names the old and the new master, the release un-pauses both
    and stops the renewer."""
    group = sentinel_set(down_after_ms=60000)  # the pause holds the sentinels' hellos: only the forced failover
    master = group.master
    record = str(tmp_path / 'pause.json')
    args = {'server': group.endpoint(), 'mode': 'pause', 'record': record, 'pause_ms': 1500,
            'verify_window_ms': 300}
    released = None
    try:
        paused = run_module('kv_isolate', args)
        assert not paused.get('failed'), paused.get('msg')
        assert paused['endpoint'] == _address(master) and paused['paused_nodes'] == [_address(master)]
        assert write_blocked(master)

        old, new = group.failover_seen_by_one()  # the pause holds the hellos that tell the other sentinels
        assert old.port == master.port
        seen = wait_for('the renewer to see the failover', lambda: os.path.exists(record + '.failover') and
                        _record(record + '.failover'))
        assert seen['master'] == _address(new) and seen['nodes'] == [_address(old), _address(new)], seen
        assert seen['failovers'][0]['old_master'] == _address(old)
        probe = WriteProbe(new, key=b'app:during').start()
        assert probe.blocked(), 'the new master takes writes: nobody paused it'

        again = run_module('kv_isolate', args)
        assert not again.get('failed'), again.get('msg')
        assert again['changed'] is False, again
        assert again['master_moved'] == dict(old_master=_address(old), new_master=_address(new))
        assert again['paused_nodes'] == sorted([_address(old), _address(new)])
        assert _address(old) in again['msg'] and _address(new) in again['msg']
        renewer = _record(record)['pause']

        released = run_module('kv_isolate', dict(args, state='released'))
        assert not released.get('failed'), released.get('msg')
        assert released['master_moved']['new_master'] == _address(new)
        assert sorted(released['unpaused_nodes']) == sorted([_address(old), _address(new)])
        assert probe.finished(), 'the write held back on the new master did not go through after the release'
        assert new.admin().get(b'app:during') == b'x'
        assert not os.path.exists(record + '.failover')
        wait_for('the renewer to end', lambda: not _running(renewer['pid']))
        assert not write_blocked(new)
        no_secret(json.dumps(paused), json.dumps(again), json.dumps(released), open(record).read())
    finally:
        if released is None:
            run_module('kv_isolate', dict(args, state='released'))


def _replica_flags(group, server):
    for entry in group.sentinels[0].client().execute_command('SENTINEL', 'REPLICAS', 'kvmain'):
        fields = entry if isinstance(entry, dict) else dict(zip(entry[0::2], entry[1::2]))
        if int(fields.get('port')) == server.port:
            return str(fields.get('flags'))
    return ''


def test_kv_isolate_acl_isolates_a_new_master_that_was_down_at_isolation_time(sentinel_set, tmp_path):
    """A replica the sentinels list as down cannot be isolated: the step warns and names it.  Promoted later, it
    would take the applications' writes; the re-run sees the moved master, switches the users off there and says
    so; the release sets both nodes back."""
    group = sentinel_set(down_after_ms=1000)
    master, replica = group.master, group.replica
    for node in group.nodes:
        node.admin().execute_command('ACL', 'SETUSER', 'app', 'on', '>' + APP_PASSWORD, '~*', '+@all')
    record = str(tmp_path / 'acl.json')
    args = {'server': group.endpoint('admin'), 'mode': 'acl', 'users': ['app'], 'record': record,
            'verify_window_ms': 300}
    os.kill(replica.proc.pid, signal.SIGSTOP)
    try:
        wait_for('the sentinels to see the replica down', lambda: 's_down' in _replica_flags(group, replica))
        first = run_module('kv_isolate', args)
    finally:
        os.kill(replica.proc.pid, signal.SIGCONT)
    assert not first.get('failed'), first.get('msg')
    assert first['not_isolated'] == [_address(replica)], first
    assert [n['address'] for n in first['nodes']] == [_address(master)]
    assert any(_address(replica) in w for w in first.get('warnings', [])), first.get('warnings')
    assert _app_refused(master) and not _app_refused(replica)

    wait_for('the sentinels to see the replica up', lambda: 's_down' not in _replica_flags(group, replica))
    old, new = group.failover()
    assert new.port == replica.port
    group.wait_settled()
    assert not _app_refused(new)  # what the re-run is for

    again = run_module('kv_isolate', args)
    assert not again.get('failed'), again.get('msg')
    assert again['changed'] is True, again
    assert again['master_moved'] == dict(old_master=_address(old), new_master=_address(new))
    assert 'was not isolated' in again['msg'] and _address(new) in again['msg'], again['msg']
    assert _app_refused(new) and _app_refused(old)

    released = run_module('kv_isolate', dict(args, state='released'))
    assert not released.get('failed') and released['changed'] is True, released
    assert not _app_refused(new) and not _app_refused(old)
