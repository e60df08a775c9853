"""playbooks/restore.yml end to end with ansible-playbook against real servers: a logical backup and an RDB file,
each plain and encrypted, restored into a target without a scratch server.

The files are written by the collection's own kv_rdb_backup from a Redis 7.2 source holding every type, awkward key
names (newline, NUL, non-UTF-8, RESP look-alikes, the empty name) and TTLs in dbs 0 and 3; the target's content is
compared with the source by tests/support/compare.py (SCAN, value reads and PTTL of both servers), not by the
collection's own comparison.
"""

import glob
import json
import os
import re

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._backup import Backup
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from tests.integration.test_playbook_migrate import ROOT, no_secret, recap, write_inventory
from tests.support import compare, data
from tests.support.ansible import ansible_playbook

PLAYBOOK = os.path.join(ROOT, 'playbooks', 'restore.yml')
PHRASE = 'Restore-Phrase-7x'

CASES = ['logical-plain', 'logical-encrypted', 'rdb-plain', 'rdb-encrypted']
# check mode and the rerun run the same tasks whatever the file: two cases take them (one of each kind, one of each
# encryption), the other two only the restore, so the suite's time stays in bounds
FULL = ('logical-plain', 'rdb-encrypted')


def _write_backup(source, folder, case):
    """The backup file of ``case``; returns (the path to give kv_restore_file, the path written)."""
    kind, how = case.split('-')
    passphrase = PHRASE if how == 'encrypted' else None
    given = str(folder / ('backup.%s' % ('kvt' if kind == 'logical' else 'rdb')))
    admin = source.admin()
    delay = admin.config_get('repl-diskless-sync-delay')['repl-diskless-sync-delay']
    admin.config_set('repl-diskless-sync-delay', 0)  # the snapshot now (a shared server: put back)
    try:
        result = Backup(Endpoint(source.endpoint(), 'server'), given, method='logical' if kind == 'logical' else 'sync',
                        passphrase=passphrase).run()
    finally:
        admin.config_set('repl-diskless-sync-delay', delay)
    assert result['format'] == ('logical' if kind == 'logical' else 'rdb'), result
    assert result['dest'] == given + ('.enc' if passphrase else '')
    return given, result['dest']


@pytest.mark.parametrize('case', CASES)
def test_restore_playbook_check_restore_verify_rerun(case, redis72, valkey80, tmp_path):
    for db in (0, 3):
        data.load_all_types(redis72.admin(db), prefix=b'db%d:' % db, big=1500)
    assert any(b'\n' in k for k in compare._scan_all(redis72.admin(0)))
    folder = tmp_path / 'backups'
    folder.mkdir()
    given, written = _write_backup(redis72, folder, case)
    source_before = compare.snapshot(redis72, dbs=(0, 3))
    host_vars = dict(kv_restore_file=given, kv_db_map={3: 5}, kv_poll_interval=1)
    if written != given:
        # encrypted: give the name without the suffix once (the playbook finds <path>.enc), the full name otherwise
        host_vars['kv_backup_passphrase'] = PHRASE
        if case.startswith('rdb'):
            host_vars['kv_restore_file'] = written
    inventory = write_inventory(tmp_path, {'box': ({}, valkey80.endpoint())}, **host_vars)
    _drop_source(inventory)

    outputs = []
    if case in FULL:
        dry = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
        assert dry.returncode == 0, dry.stdout[-3000:]
        assert 'Plan (check mode, nothing written)' in dry.stdout
        assert 'nothing to verify yet' in dry.stdout
        assert valkey80.admin().info('keyspace') == {}, 'check mode wrote to the target'
        assert not (tmp_path / 'reports').exists(), 'check mode wrote a report'
        assert not glob.glob(str(tmp_path / 'work' / '*')), 'check mode wrote into kv_work_dir'
        outputs.append(dry.stdout)

    first = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap(first.stdout)['box']['changed'] >= 1 and recap(first.stdout)['box']['failed'] == 0
    compare.assert_same(redis72, valkey80, [(0, 0), (3, 5)])
    assert valkey80.admin(3).dbsize() == 0, 'db_map was not honoured'
    # progress the way the copy shows it: keys of the total and bytes
    assert re.search(r'box: restore: \w+ [\d.]+% \(\d+ of \d+ keys, [\d,.]+ MB', first.stdout), first.stdout[-3000:]

    report_path = tmp_path / 'reports' / 'box-latest.json'
    report = json.loads(report_path.read_text())
    assert re.match(r'^box-\d{8}T\d{6}Z-restore\.json$', os.readlink(str(report_path)))
    assert report['playbook'] == 'restore' and report['status'] == 'ok'
    assert report['verification']['consistent'] is True, report['verification']
    assert report['verification']['scope_detail'].startswith('file: every key of the restored file')
    assert report['restore']['file'] == written and report['restore']['given'] == host_vars['kv_restore_file']
    assert report['restore']['content'] == ('logical backup' if case.startswith('logical') else 'RDB file')
    assert report['restore']['size'] == os.path.getsize(written)
    counts = dict((c['target_db'], (c['file_keys'], c['target_keys'])) for c in report['restore']['counts'])
    assert counts == {0: (valkey80.admin(0).dbsize(),) * 2, 5: (valkey80.admin(5).dbsize(),) * 2}, counts
    assert [s['step'] for s in report['steps']] == ['preflight', 'restore', 'verify']
    markdown = open(str(tmp_path / 'reports' / 'box-latest.md')).read()
    assert markdown.startswith('# Restore report: box') and '## Restored from' in markdown

    if case in FULL:
        second = ansible_playbook(PLAYBOOK, inventory=inventory)
        assert second.returncode == 0, second.stdout[-3000:]
        assert recap(second.stdout)['box']['changed'] == 0, second.stdout[-3000:]
        compare.assert_same(redis72, valkey80, [(0, 0), (3, 5)])
        outputs.append(second.stdout)
    assert compare.snapshot(redis72, dbs=(0, 3)) == source_before
    for out in outputs + [first.stdout, report_path.read_text(), markdown]:
        no_secret(out)
        assert PHRASE not in out


def test_restore_stops_before_writing_on_differing_keys_and_a_wrong_passphrase(redis72, valkey80, tmp_path):
    data.load_all_types(redis72.admin(0), prefix=b'k:')
    folder = tmp_path / 'backups'
    folder.mkdir()
    given, written = _write_backup(redis72, folder, 'rdb-encrypted')
    valkey80.admin(0).set(b'k:list', b'not the list of the file')
    inventory = write_inventory(tmp_path, {'box': ({}, valkey80.endpoint())}, kv_restore_file=given,
                                kv_backup_passphrase='not the passphrase')
    _drop_source(inventory)
    wrong = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert wrong.returncode != 0
    assert 'passphrase' in wrong.stdout and 'Nothing was written' in wrong.stdout, wrong.stdout[-3000:]
    assert valkey80.admin(0).dbsize() == 1
    report = json.loads((tmp_path / 'reports' / 'box-latest.json').read_text())
    assert report['status'] == 'failed' and report['source'] == 'file:' + given

    inventory = write_inventory(tmp_path, {'box': ({}, valkey80.endpoint())}, kv_restore_file=given,
                                kv_backup_passphrase=PHRASE)
    _drop_source(inventory)
    conflict = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert conflict.returncode != 0
    assert 'kv_target already holds 1 key(s) that differ' in conflict.stdout, conflict.stdout[-3000:]
    assert 'kv_on_conflict' in conflict.stdout
    assert valkey80.admin(0).dbsize() == 1 and valkey80.admin(0).get(b'k:list') == b'not the list of the file'
    for out in (wrong.stdout, conflict.stdout):
        assert PHRASE not in out
        no_secret(out)


def _drop_source(inventory):
    """restore.yml has no source: remove the empty kv_source write_inventory puts in."""
    import yaml
    with open(inventory) as fh:
        doc = yaml.safe_load(fh)
    for host in doc['all']['hosts'].values():
        host.pop('kv_source', None)
    with open(inventory, 'w') as fh:
        yaml.safe_dump(doc, fh)
