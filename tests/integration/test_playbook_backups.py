"""Backups as first-class steps, seen where the user sees them: playbooks/backup.yml and verify.yml against real servers.

* retries never rotate away the first backup (backup_keep=1, four runs);
* an encrypted backup has its own suffix (.enc) and its own sidecar;
* free space is checked before anything is written: kv_work_dir on a real 2 MiB tmpfs (mounted by the test, root
  only; skipped elsewhere) - the file system's own statvfs figures, nothing simulated - for kv_rdb_backup through
  the playbook and for kv_sync's backup;
* the backup and the verification print progress lines through kv_wait, in bytes and keys.
"""

import glob
import json
import os
import re
import subprocess

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
from tests.integration.test_kv_sync import args_for, engine
from tests.integration.test_playbook_migrate import ROOT, no_secret, recap, write_inventory
from tests.support.ansible import ansible_playbook

BACKUP = os.path.join(ROOT, 'playbooks', 'backup.yml')
VERIFY = os.path.join(ROOT, 'playbooks', 'verify.yml')
PHRASE = 'Backup-Suffix-Phrase-3'


def _fill(server, count=6000, size=1500):
    """About ``count * size`` bytes of data (9 MB by default), in dbs 0 and 2."""
    for db in (0, 2):
        pipe = server.admin(db).pipeline(transaction=False)
        for i in range(count // 2):
            pipe.set(b'bulk:%d:\n\xff' % i, os.urandom(size // 2).hex().encode())
        pipe.execute()


def _sha(path):
    with open(path) as fh:
        return json.load(fh)['sha256']


def test_retries_keep_the_first_backup_and_show_progress(redis72, valkey80, tmp_path):
    _fill(redis72)
    inventory = write_inventory(tmp_path, {'box': (redis72.endpoint(), valkey80.endpoint())},
                                backup_keep=1, backup_poll_interval=1, verify_poll_interval=1)
    dest = str(tmp_path / 'work' / 'kv-backup-box.rdb')
    outputs = []
    for attempt in range(4):
        run = ansible_playbook(BACKUP, inventory=inventory)
        assert run.returncode == 0, run.stdout[-3000:]
        outputs.append(run.stdout)
        if attempt == 0:
            first = _sha(dest + '.json')
            assert 'the oldest backup there is kept whatever backup_keep says' in run.stdout
        redis72.admin(0).set(b'attempt', b'%d' % attempt)  # each backup differs from the one before
    older = sorted(p for p in glob.glob(dest + '.*') if re.search(r'\.rdb\.\d{8}T\d{6}Z(-\d+)?$', p))
    # keep 1 older backup, plus the first one whatever backup_keep says: the second went, the first stayed
    assert len(older) == 2, older
    kept = sorted(_sha(p + '.json') for p in older)
    assert first in kept and _sha(dest + '.json') != first
    for path in older:
        with open(path + '.json') as fh:
            assert json.load(fh)['sha256'] == _sha(path + '.json')
    # progress the way the copy shows it, in bytes of the expected size
    lines = [line for out in outputs for line in out.splitlines() if 'box: kv_rdb_backup: ' in line]
    assert any(re.search(r'kv_rdb_backup: \w+ [\d.]+% \([\d,.]+ MB of [\d,.]+ MB\), [\d,.]+ MB/s', line)
               for line in lines), lines

    # an encrypted backup has its own suffix and sidecar; the plain ones stay as they were
    enc = write_inventory(tmp_path, {'box': (redis72.endpoint(), valkey80.endpoint())},
                          kv_backup_passphrase=PHRASE, backup_poll_interval=1)
    run = ansible_playbook(BACKUP, inventory=enc)
    assert run.returncode == 0, run.stdout[-3000:]
    assert 'written to %s.enc' % dest in run.stdout
    with open(dest + '.enc', 'rb') as fh:
        assert fh.read(8) == b'KVTENC1\n'
    with open(dest + '.enc.json') as fh:
        sidecar = json.load(fh)
    assert sidecar['encrypted'] is True and sidecar['file'] == 'kv-backup-box.rdb.enc'
    with open(dest, 'rb') as fh:
        assert fh.read(5) == b'REDIS'
    assert PHRASE not in run.stdout
    no_secret(run.stdout)

    # the verification shows progress too: keys compared of the total
    DumpRestore(Endpoint(redis72.endpoint(), 'source'), Endpoint(valkey80.endpoint(), 'target'),
                CopyOptions()).run()
    verify = ansible_playbook(VERIFY, inventory=inventory)
    assert verify.returncode == 0, verify.stdout[-3000:]
    assert recap(verify.stdout)['box']['changed'] == 0
    assert re.search(r'box: kv_verify: \w+ [\d.]+% \(\d+ of 6001 keys, [\d,.]+ MB\)', verify.stdout), \
        verify.stdout[-3000:]


@pytest.fixture
def small_dir(tmp_path):
    mount = tmp_path / 'small'
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip('mounting a tiny tmpfs needs root')
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', str(mount)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        pytest.skip('cannot mount a tmpfs here: %s' % proc.stdout)
    try:
        yield mount
    finally:
        subprocess.run(['umount', str(mount)], check=False)


def test_too_little_free_space_refuses_before_writing(redis72, valkey80, small_dir, tmp_path):
    _fill(redis72)  # about 9 MB of data: the 2 MiB file system cannot hold its backup
    inventory = write_inventory(tmp_path, {'box': (redis72.endpoint(), valkey80.endpoint())},
                                kv_work_dir=str(small_dir))
    run = ansible_playbook(BACKUP, inventory=inventory)
    assert run.returncode != 0
    assert recap(run.stdout)['box']['failed'] == 1
    match = re.search(r'not enough free space for the backup in %s: (\d+) bytes free, (\d+) bytes needed'
                      % re.escape(str(small_dir)), run.stdout)
    assert match, run.stdout[-3000:]
    free, needed = int(match.group(1)), int(match.group(2))
    assert 0 < free <= 2 * 2 ** 20 < 9 * 10 ** 6 < needed
    assert 'used_memory_dataset' in run.stdout
    assert [p for p in os.listdir(str(small_dir)) if 'backup' in p] == [], 'something was written'
    no_secret(run.stdout)

    # kv_sync's backup (the live strategy): the same check before the follower starts
    record = tmp_path / 'sync.json'
    failed = engine('kv_sync', args_for(redis72, valkey80, record, backup=str(small_dir / 'dump.rdb')))
    assert failed.get('failed') and failed['error'] == 'space', failed
    assert 'not enough free space for the backup in %s' % small_dir in failed['msg']
    assert not record.exists() and os.listdir(str(small_dir)) == []
    assert valkey80.admin().info('keyspace') == {}, 'kv_sync wrote to the target before refusing'
