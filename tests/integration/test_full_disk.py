"""A full disk under a checkpoint, report or progress file: ``error: io`` naming the file, never an unexpected error.

A tiny tmpfs is mounted by the test (root only; skipped otherwise) and filled to the last byte; one file of the
run is placed on it, the others on a normal disk.  The rerun hint names the checkpoint only when there is one.
"""

import os
import subprocess

import pytest


@pytest.fixture
def full_dir(tmp_path):
    mount = tmp_path / 'full'
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip('mounting a tiny tmpfs needs root')
    proc = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', str(mount)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        pytest.skip('cannot mount a tmpfs here: %s' % proc.stdout)
    try:
        with open(str(mount / 'filler'), 'wb', buffering=0) as fh:  # fill it to the last block
            try:
                while True:
                    fh.write(b'\0' * 4096)
            except OSError:
                pass
        with pytest.raises(OSError):
            with open(str(mount / 'probe'), 'wb') as fh:
                fh.write(b'x' * 100)
        os.unlink(str(mount / 'probe'))
        yield mount
    finally:
        subprocess.run(['umount', str(mount)], check=False)


def _load(server, count=3000):
    client = server.admin()
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(b'k:%d' % i, b'v' * 20)
    pipe.execute()


# (module, the option whose file is on the full disk, other file options, whether a checkpoint exists)
CASES = [
    ('kv_dump_restore', 'checkpoint', {'report': 'ok/report.json'}, True),
    ('kv_dump_restore', 'progress', {'checkpoint': 'ok/ckpt.json'}, True),
    ('kv_dump_restore', 'report', {}, False),
    ('kv_migrate', 'progress', {}, False),
    ('kv_migrate', 'report', {'progress': 'ok/progress.json'}, False),
    ('kv_verify', 'report', {}, False),
]


@pytest.mark.parametrize('module, option, others, has_checkpoint', CASES,
                         ids=['%s-%s' % (c[0], c[1]) for c in CASES])
def test_full_disk_is_an_io_error_naming_the_file(
        module, option, others, has_checkpoint, redis70, valkey80, full_dir, run_module, tmp_path):
    _load(redis70)
    (tmp_path / 'ok').mkdir()
    path = str(full_dir / ('%s.json' % option))
    args = {'source': redis70.endpoint('migrator'), 'target': valkey80.endpoint('migrator'), option: path}
    for name, rel in others.items():
        args[name] = str(tmp_path / rel)
    if module != 'kv_verify':
        args['batch_size'] = 1000
    else:
        args['fail_on_mismatch'] = False  # the target is empty: the report is what fails
    result = run_module(module, args)
    assert result.get('failed') is True, result
    assert result.get('error') == 'io', result
    msg = result['msg']
    assert path in msg and 'No space left on device' in msg, msg
    assert 'unexpected' not in msg
    if has_checkpoint:
        ckpt = args['checkpoint']
        assert 'Rerun with the same checkpoint (%s)' % ckpt in msg, msg
    else:
        assert 'checkpoint' not in msg.replace(path, ''), msg
    # no temp file left behind on the full disk
    assert sorted(os.listdir(str(full_dir))) == ['filler']
    if module == 'kv_verify':
        assert valkey80.admin().dbsize() == 0
