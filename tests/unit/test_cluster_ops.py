"""Names and records of kv_isolate / kv_rdb_backup on a cluster (no server needed)."""

import json
import os

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._backup_cluster import part_path
from ansible_collections.kvtools.migration.plugins.module_utils._backup_files import rotation_plan
from ansible_collections.kvtools.migration.plugins.module_utils._backup_manifest import (
    MANIFEST_FORMAT, is_manifest, part_files, read_manifest)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._isolate_cluster import node_record_path


def test_part_names_keep_the_extension_and_the_enc_suffix():
    stamp = '20261202T064500Z'
    assert part_path('/b/dump.rdb', stamp, 0, 3, False) == '/b/dump.20261202T064500Z-node1of3.rdb'
    # the part's own Backup adds .enc: the name given to it has none
    assert part_path('/b/dump.rdb.enc', stamp, 2, 3, True) == '/b/dump.20261202T064500Z-node3of3.rdb'
    assert part_path('/b/backup', stamp, 1, 2, False) == '/b/backup.20261202T064500Z-node2of2'


def test_parts_are_never_taken_for_older_backups_of_dest(tmp_path):
    dest = str(tmp_path / 'dump.rdb')
    for name in ('dump.rdb', 'dump.20261202T064500Z-node1of3.rdb', 'dump.20261202T064500Z-node1of3.rdb.json'):
        (tmp_path / name).write_text('x')
    moves, removals = rotation_plan(dest, 0)
    assert moves == [] and removals == []


def test_manifest_names_its_parts(tmp_path):
    part = tmp_path / 'dump.20261202T064500Z-node1of1.rdb'
    part.write_bytes(b'REDIS0010')
    (tmp_path / (part.name + '.json')).write_text('{}')
    manifest = tmp_path / 'dump.rdb'
    manifest.write_text(json.dumps(dict(format=MANIFEST_FORMAT, parts=[dict(file=part.name, address='h:1')])))
    assert is_manifest(str(manifest))
    assert read_manifest(str(manifest))['parts'][0]['path'] == str(part)
    assert part_files(str(manifest)) == [str(part), str(part) + '.json']
    assert not is_manifest(str(part)) and part_files(str(part)) == []
    other = tmp_path / 'other.json'
    other.write_text('{"format": "something else"}')
    assert not is_manifest(str(other))
    with pytest.raises(KVError) as err:
        read_manifest(str(other))
    assert err.value.kind == 'corrupt'


def test_node_records_sit_next_to_the_cluster_record():
    assert node_record_path('/r/iso.json', '10.0.0.5:6379') == '/r/iso.json.node-10.0.0.5-6379'
    assert node_record_path('/r/iso.json', '::1:7000') == '/r/iso.json.node---1-7000'
    assert node_record_path(None, '10.0.0.5:6379') is None
    assert os.path.dirname(node_record_path('/r/iso.json', 'h:1')) == '/r'
