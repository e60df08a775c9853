"""Pure logic of plugins/module_utils/_backup_files.py (names, rotation, free space); the server side is in
tests/integration/test_kv_rdb_backup.py and tests/integration/test_backup_files.py."""

import os
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _backup_files
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError


def _write(tmp_path, name, age):
    path = tmp_path / name
    path.write_bytes(b'')
    stamp = time.time() - age
    os.utime(str(path), (stamp, stamp))
    return str(path)


def _names(pairs):
    return [(os.path.basename(a), os.path.basename(b)) for a, b in pairs]


def test_rotation_renames_the_current_backup_once_by_its_time_and_keeps_the_newest(tmp_path):
    dest = str(tmp_path / 'b.rdb')
    for name, age in (('b.rdb.7', 500), ('b.rdb.2', 400), ('b.rdb.1', 300), ('b.rdb.1.json', 300),
                      ('b.rdb', 100), ('b.rdb.json', 100), ('other.1', 50), ('b.rdb.x', 50)):
        _write(tmp_path, name, age)
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(os.stat(dest).st_mtime))
    moves, removals = _backup_files.rotation_plan(dest, 2)
    assert _names(moves) == [('b.rdb', 'b.rdb.' + stamp), ('b.rdb.json', 'b.rdb.%s.json' % stamp)]
    assert sorted(os.path.basename(p) for p in removals) == ['b.rdb.2', 'b.rdb.7']  # b.rdb.1 and b.rdb stay
    moves, removals = _backup_files.rotation_plan(dest, 0)
    assert moves == []  # dest is replaced by the rename of the new backup: never a moment without one
    assert sorted(os.path.basename(p) for p in removals) == ['b.rdb.1', 'b.rdb.1.json', 'b.rdb.2', 'b.rdb.7',
                                                             'b.rdb.json']


def test_keep_first_never_removes_the_oldest_backup(tmp_path):
    dest = str(tmp_path / 'b.rdb')
    _write(tmp_path, 'b.rdb.20261201T010000Z', 900)
    _write(tmp_path, 'b.rdb.20261201T010000Z.json', 900)
    _write(tmp_path, 'b.rdb.20261201T020000Z', 600)
    _write(tmp_path, 'b.rdb', 10)
    moves, removals = _backup_files.rotation_plan(dest, 1, keep_first=True)
    assert [os.path.basename(a) for a, b in moves] == ['b.rdb']
    assert [os.path.basename(p) for p in removals] == ['b.rdb.20261201T020000Z']
    moves, removals = _backup_files.rotation_plan(dest, 0, keep_first=True)
    assert moves == [] and sorted(os.path.basename(p) for p in removals) == ['b.rdb.20261201T020000Z']
    # the only backup so far is the first one: with keep 0 it is moved aside, not replaced
    only = str(tmp_path / 'c.rdb')
    _write(tmp_path, 'c.rdb', 5)
    moves, removals = _backup_files.rotation_plan(only, 0, keep_first=True)
    assert [os.path.basename(a) for a, b in moves] == ['c.rdb'] and removals == []
    assert _backup_files.rotation_plan(only, 0, keep_first=False) == ([], [])


def test_a_name_taken_by_a_backup_of_the_same_second_gets_a_counter(tmp_path):
    dest = _write(tmp_path, 'b.rdb', 10)
    stamp = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(os.stat(dest).st_mtime))
    _write(tmp_path, 'b.rdb.' + stamp, 10)
    moves, dummy = _backup_files.rotation_plan(dest, 5)
    assert _names(moves) == [('b.rdb', 'b.rdb.%s-1' % stamp)]


def test_encrypted_suffix_and_finding_it(tmp_path):
    assert _backup_files.backup_path('/x/b.rdb', True) == '/x/b.rdb.enc'
    assert _backup_files.backup_path('/x/b.rdb.enc', True) == '/x/b.rdb.enc'
    assert _backup_files.backup_path('/x/b.rdb', False) == '/x/b.rdb'
    plain = str(tmp_path / 'b.rdb')
    assert _backup_files.existing_backup(plain) == plain  # nothing there: the name as given
    _write(tmp_path, 'b.rdb.enc', 1)
    assert _backup_files.existing_backup(plain) == plain + '.enc'
    _write(tmp_path, 'b.rdb', 1)
    assert _backup_files.existing_backup(plain) == plain  # an older encrypted file under the plain name


def test_expected_bytes_and_the_refusal_names_directory_free_and_needed(tmp_path):
    need, basis = _backup_files.expected_backup_bytes({'used_memory': 5000000}, {'used_memory_dataset': 2000000})
    assert need == 2200000 + (1 << 20) and 'used_memory_dataset' in basis
    need2, basis2 = _backup_files.expected_backup_bytes({'used_memory': 5000000}, {'used_memory_startup': 1000000})
    assert need2 == 4400000 + (1 << 20) and 'used_memory_startup' in basis2
    assert _backup_files.expected_backup_bytes({'used_memory': None}, {})[0] is None
    free = _backup_files.free_bytes(str(tmp_path))
    with pytest.raises(KVError) as info:
        _backup_files.check_free_space(str(tmp_path / 'b.rdb'), free + (1 << 40), 'a test')
    err = info.value
    assert err.kind == 'space' and str(tmp_path) in err.message
    assert err.details['needed_bytes'] == free + (1 << 40) and 0 < err.details['free_bytes'] < err.details['needed_bytes']
    assert '%d bytes needed' % (free + (1 << 40)) in err.message
    assert _backup_files.check_free_space(str(tmp_path / 'b.rdb'), None, 'unknown') > 0
