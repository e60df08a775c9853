"""Pure logic of plugins/module_utils/_backup.py (rotation); the server side is in tests/integration/test_kv_rdb_backup.py."""

import os

from ansible_collections.kvtools.migration.plugins.module_utils import _backup


# --- rotation --------------------------------------------------------------------------------------

def test_rotation_plan(tmp_path):
    dest = str(tmp_path / 'b.rdb')
    for name in ('b.rdb', 'b.rdb.json', 'b.rdb.1', 'b.rdb.1.json', 'b.rdb.2', 'b.rdb.7', 'other.1', 'b.rdb.x'):
        (tmp_path / name).write_bytes(b'')
    moves, removals = _backup.rotation_plan(dest, 2)
    names = [(os.path.basename(a), os.path.basename(b)) for a, b in moves]
    assert names == [('b.rdb.1', 'b.rdb.2'), ('b.rdb.1.json', 'b.rdb.2.json'), ('b.rdb', 'b.rdb.1'),
                     ('b.rdb.json', 'b.rdb.1.json')]
    assert sorted(os.path.basename(p) for p in removals) == ['b.rdb.2', 'b.rdb.7']
    moves, removals = _backup.rotation_plan(dest, 0)
    assert moves == []
    assert sorted(os.path.basename(p) for p in removals) == ['b.rdb.1', 'b.rdb.1.json', 'b.rdb.2', 'b.rdb.7',
                                                             'b.rdb.json']
