"""kv_rdb_backup on a cluster (one RDB per master and a manifest) and kv_dump_restore of that backup into a
standalone server and into a 2-master cluster, against real servers; compared with tests/support/compare.py."""

import json
import os

import pytest

from tests.conftest import assert_no_secret
from tests.integration.test_cluster import load, masters
from tests.support import compare

pytestmark = pytest.mark.xdist_group('cluster')

PASSPHRASE = 'cluster-Backup-pass-5'


def files_in(directory):
    return sorted(name for name in os.listdir(str(directory)))


def test_backup_per_master_encrypted_then_restore_into_standalone_and_cluster(cluster_of, flavour_server, run_module,
                                                                              tmp_path):
    source = cluster_of('redis70')
    load(source.client())
    per_master = dict(('127.0.0.1:%d' % node.port, int(node.admin().dbsize())) for node in source.nodes)
    loaded = sum(per_master.values())
    writes = [compare.source_writes(node) for node in source.nodes]
    backups = tmp_path / 'backups'
    backups.mkdir()
    dest = str(backups / 'cluster.rdb')
    args = {'server': source.endpoint('admin', node=2), 'dest': dest, 'passphrase': PASSPHRASE, 'keep': 1}

    plan = run_module('kv_rdb_backup', args, check=True)
    assert not plan.get('failed'), plan.get('msg')
    assert plan['changed'] is True and plan['format'] == 'cluster' and len(plan['parts']) == 3
    assert dict((p['address'], p['keys']) for p in plan['parts']) == per_master
    assert plan['space']['needed_bytes'] == sum(plan['space']['per_node'].values())
    assert files_in(backups) == [], 'check mode wrote'

    first = run_module('kv_rdb_backup', args)
    assert not first.get('failed'), first.get('msg')
    assert first['dest'] == dest + '.enc' and first['format'] == 'cluster' and first['method_used'] == 'sync'
    assert first['keys'] == loaded and first['encrypted'] is True
    assert_no_secret(first, PASSPHRASE)
    parts = first['parts']
    assert dict((p['address'], p['keys']) for p in parts) == per_master
    assert sorted(p['slots'] for p in parts) == [5461, 5461, 5462]
    for part in parts:
        path = str(backups / part['file'])
        assert part['file'].endswith('.rdb.enc') and os.path.getsize(path) == part['size']
        assert part['checksum'] == 'verified'
        with open(path, 'rb') as fh:
            assert fh.read(7) == b'KVTENC1', 'a part is not encrypted'
    assert first['parts_size'] == sum(p['size'] for p in parts)
    with open(first['sidecar']) as fh:
        sidecar = json.load(fh)
    assert [(p['address'], p['file'], p['keys']) for p in sidecar['parts']] \
        == [(p['address'], p['file'], p['keys']) for p in parts]
    assert PASSPHRASE not in json.dumps(sidecar)

    standalone = flavour_server('redis70', role='cluster-restore')
    restored = run_module('kv_dump_restore', {'source': {'url': 'file://' + dest}, 'target': standalone.endpoint(),
                                              'backup_passphrase': PASSPHRASE})
    assert not restored.get('failed'), restored.get('msg')
    assert restored['totals']['copied'] == loaded and restored['totals']['failed'] == 0
    assert compare.differences(masters(source), standalone.admin(), deep=True) == []

    two = cluster_of('redis70', masters=2)
    into = run_module('kv_dump_restore', {'source': {'url': 'file://' + dest}, 'target': two.endpoint(node=1),
                                          'backup_passphrase': PASSPHRASE})
    assert not into.get('failed'), into.get('msg')
    assert into['totals']['copied'] == loaded
    assert sum(n['written'] for n in into['cluster']['target_nodes']) == loaded
    assert compare.differences(masters(source), masters(two), deep=True) == []
    again = run_module('kv_dump_restore', {'source': {'url': 'file://' + dest}, 'target': two.endpoint(),
                                           'backup_passphrase': PASSPHRASE})
    assert again['changed'] is False and again['totals']['identical'] == loaded

    # rotation: keep=1 keeps the previous manifest and its parts; keep=0 then removes every older part
    second = run_module('kv_rdb_backup', args)
    assert not second.get('failed'), second.get('msg')
    assert len(second['rotated']) == 2  # the manifest and its sidecar
    older = [name for name in files_in(backups) if name.startswith('cluster.rdb.enc.') and not name.endswith('.json')]
    assert len(older) == 1
    assert all(os.path.exists(str(backups / p['file'])) for p in first['parts'] + second['parts'])
    third = run_module('kv_rdb_backup', dict(args, keep=0))
    assert not third.get('failed'), third.get('msg')
    kept = set(['cluster.rdb.enc', 'cluster.rdb.enc.json'] + [p['file'] for p in third['parts']]
               + [p['file'] + '.json' for p in third['parts']])
    assert set(files_in(backups)) == kept
    assert [compare.source_writes(node) for node in source.nodes] == writes, 'the source was written to'


def test_a_missing_part_writes_nothing(cluster_of, flavour_server, run_module, tmp_path):
    source = cluster_of('valkey80')
    load(source.client())
    dest = str(tmp_path / 'c.rdb')
    made = run_module('kv_rdb_backup', {'server': source.endpoint('admin'), 'dest': dest})
    assert not made.get('failed'), made.get('msg')
    os.unlink(str(tmp_path / made['parts'][1]['file']))
    target = flavour_server('valkey80', role='cluster-restore')
    failed = run_module('kv_dump_restore', {'source': {'url': 'file://' + dest}, 'target': target.endpoint()})
    assert failed.get('failed') and made['parts'][1]['address'] in failed['msg'], failed.get('msg')
    assert int(target.admin().dbsize()) == 0


def test_a_master_that_refuses_sync_leaves_no_part_behind(cluster_of, run_module, tmp_path):
    """method=sync, and the backup user may not SYNC on the last master: the parts already written are removed,
    the older backup at dest stays as it was, and the error names the node."""
    source = cluster_of('valkey80')
    load(source.client())
    backups = tmp_path / 'backups'
    backups.mkdir()
    dest = str(backups / 'c.rdb')
    older = run_module('kv_rdb_backup', {'server': source.endpoint('admin'), 'dest': dest})
    assert not older.get('failed'), older.get('msg')
    before = files_in(backups)
    password = 'Backup-User-3'
    last = source.nodes[-1]
    try:
        for node in source.nodes:
            refused = ' -sync -psync' if node is last else ''
            node.admin().execute_command('ACL', 'SETUSER', 'backup-user', 'on', '>' + password, '~*', '&*',
                                         *('+@all' + refused).split())
        endpoint = dict(source.endpoint(None), username='backup-user', password=password)
        failed = run_module('kv_rdb_backup', {'server': endpoint, 'dest': dest, 'method': 'sync', 'keep': 2})
        assert failed.get('failed') and '127.0.0.1:%d' % last.port in failed['msg'], failed.get('msg')
        assert failed['error'] == 'noperm', failed
        assert_no_secret(failed, password)
        assert files_in(backups) == before, 'a part of the failed backup was left behind'
        with open(dest) as fh:
            assert json.load(fh)['parts'] == older['parts']
    finally:
        for node in source.nodes:
            node.admin().execute_command('ACL', 'DELUSER', 'backup-user')
