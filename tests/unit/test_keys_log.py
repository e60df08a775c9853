"""The touched-keys log of kv_sync (plugins/module_utils/_keys_log.py): binary-safe, append-only, partial tails."""

import os
import stat

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _keys_log as keys_log
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

AWKWARD = [b'', b'plain', b'new\nline', b'nul\x00byte', b'\xff\xfe non-utf8', b'\xff' * 9, b'\xff\xff\xff\xff',
           b'x' * 70000]


def test_round_trip_every_byte_and_whole_db_marker(tmp_path):
    path = str(tmp_path / 'keys.log')
    writer = keys_log.KeysLogWriter(path, flush_bytes=10)
    for n, key in enumerate(AWKWARD):
        writer.add(n % 3, key)
    writer.whole_db(7)
    writer.add(2 ** 31 - 1, b'last')
    size = writer.flush()
    writer.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert size == os.path.getsize(path)
    expected = [(n % 3, key) for n, key in enumerate(AWKWARD)] + [(7, None), (2 ** 31 - 1, b'last')]
    assert list(keys_log.iter_keys_log(path)) == expected
    reader = keys_log.KeysLogReader(path)
    assert list(reader.records()) == expected and reader.offset == size and reader.records_read == len(expected)


def test_add_keys_writes_the_records_of_add(tmp_path):
    """add_keys (a snapshot block's held expiries) writes exactly what add would, key by key."""
    one, many = str(tmp_path / 'one.log'), str(tmp_path / 'many.log')
    writer = keys_log.KeysLogWriter(one)
    for key in AWKWARD:
        writer.add(5, key)
    writer.close()
    writer = keys_log.KeysLogWriter(many, flush_bytes=10)
    writer.add_keys(5, AWKWARD[:3])
    writer.add_keys(5, [])
    writer.add_keys(5, AWKWARD[3:])
    assert writer.size() == os.path.getsize(many)
    writer.close()
    with open(one, 'rb') as fh, open(many, 'rb') as gh:
        assert fh.read() == gh.read()
    with pytest.raises(ValueError):
        keys_log.KeysLogWriter(str(tmp_path / 'bad.log')).add_keys(-1, [b'k'])


def test_offsets_are_record_boundaries_and_appending_continues(tmp_path):
    path = str(tmp_path / 'keys.log')
    writer = keys_log.KeysLogWriter(path)
    writer.add(0, b'a')
    first = writer.flush()
    writer.close()
    assert first == len(keys_log.HEADER) + 8 + 1
    again = keys_log.KeysLogWriter(path)  # reopened: no second header
    again.add(1, b'b\n')
    again.whole_db(3)
    second = again.flush()
    again.close()
    assert list(keys_log.iter_keys_log(path, first)) == [(1, b'b\n'), (3, None)]
    assert list(keys_log.iter_keys_log(path, second)) == []
    assert list(keys_log.iter_keys_log(path, 0))[0] == (0, b'a')


def test_partial_tail_is_not_read_and_offset_stops_before_it(tmp_path):
    path = str(tmp_path / 'keys.log')
    writer = keys_log.KeysLogWriter(path)
    writer.add(0, b'whole')
    size = writer.flush()
    writer.close()
    record = keys_log.encode_key(5, b'being written')
    for cut in range(1, len(record)):
        with open(path, 'r+b') as fh:
            fh.truncate(size)
            fh.seek(size)
            fh.write(record[:cut])
        reader = keys_log.KeysLogReader(path)
        assert list(reader.records()) == [(0, b'whole')]
        assert reader.offset == size
    with open(path, 'ab') as fh:
        fh.write(record[cut:])
    assert list(keys_log.iter_keys_log(path, size)) == [(5, b'being written')]


def test_bad_files_and_offsets_are_named(tmp_path):
    path = str(tmp_path / 'keys.log')
    writer = keys_log.KeysLogWriter(path)
    writer.add(0, b'abc')
    size = writer.flush()
    writer.close()
    with pytest.raises(KVError) as err:
        list(keys_log.iter_keys_log(path, size + 1))
    assert err.value.kind == 'keys_log' and 'beyond its end' in err.value.message
    with open(path, 'ab') as fh:
        fh.write(b'\xff\xff\xff\xfe\x00\x00\x00\x01k')  # db -2: a corrupt record
    with pytest.raises(KVError) as err:
        list(keys_log.iter_keys_log(path, size))
    assert 'negative db number at offset %d' % size in err.value.message
    with pytest.raises(KVError) as err:
        list(keys_log.iter_keys_log(path, 3))
    assert 'no record at offset 3' in err.value.message
    with pytest.raises(KVError) as err:
        list(keys_log.iter_keys_log(path, -1))
    assert err.value.kind == 'config'
    other = tmp_path / 'other'
    other.write_bytes(b'something else')
    with pytest.raises(KVError) as err:
        list(keys_log.iter_keys_log(str(other)))
    assert 'header' in err.value.message
    with pytest.raises(KVError) as err:
        list(keys_log.iter_keys_log(str(tmp_path / 'absent')))
    assert 'cannot be read' in err.value.message
    with pytest.raises(ValueError):
        keys_log.KeysLogWriter(str(tmp_path / 'w')).add(-1, b'k')


def test_the_followers_own_records_read_back(tmp_path):
    """Bytes as kv_sync's follower writes them (header, '>iI' head, 0xFFFFFFFF for a whole db)."""
    path = tmp_path / 'follower.log'
    path.write_bytes(b'KVTKEYS1\n' + b'\x00\x00\x00\x03\x00\x00\x00\x02a\n' + b'\x00\x00\x00\x09\xff\xff\xff\xff')
    assert list(keys_log.iter_keys_log(str(path))) == [(3, b'a\n'), (9, None)]


def test_follower_usage_none_is_whole_db_and_size_is_a_resume_point(tmp_path):
    """The follower's calls: add(db, None) for a whole db, size() flushes and is a record boundary."""
    path = str(tmp_path / 'keys')
    log = keys_log.KeysLogWriter(path)
    log.add(0, b'a')
    log.add(3, b'new\nline\x00')
    log.add(2, None)
    size = log.size()
    log.add(0, b'')
    log.close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with open(path, 'rb') as fh:  # byte for byte the format of the contract
        assert fh.read() == (b'KVTKEYS1\n' + b'\x00\x00\x00\x00\x00\x00\x00\x01a'
                             + b'\x00\x00\x00\x03\x00\x00\x00\x09new\nline\x00' + b'\x00\x00\x00\x02\xff\xff\xff\xff'
                             + b'\x00\x00\x00\x00\x00\x00\x00\x00')
    assert list(keys_log.iter_keys_log(path)) == [(0, b'a'), (3, b'new\nline\x00'), (2, None), (0, b'')]
    assert list(keys_log.iter_keys_log(path, size)) == [(0, b'')]
    with open(path, 'ab') as fh:  # a record being written is left for the next read
        fh.write(b'\x00\x00\x00\x01\x00\x00\x00\x09abc')
    assert list(keys_log.iter_keys_log(path, size)) == [(0, b'')]


def test_touched_reads_several_logs_each_from_its_offset(tmp_path):
    """kv_verify's keys scope over the logs of a cluster source's followers (one per master): one set of keys per
    target db, a whole-db record in any log makes the db whole, each log read from its own offset."""
    from ansible_collections.kvtools.migration.plugins.module_utils._verify_scope import Touched
    paths = [str(tmp_path / ('part%d.keys' % n)) for n in range(3)]
    writers = [keys_log.KeysLogWriter(path) for path in paths]
    writers[0].add(0, b'before')  # before the offsets: not read
    offsets = [w.flush() for w in writers]
    writers[0].add(0, b'a\n')
    writers[1].add(0, b'b\x00')
    writers[1].add(0, b'a\n')  # in two logs (a key that moved between masters): compared once
    writers[2].add(3, b'c')
    writers[2].whole_db(3)
    writers[0].add(3, b'after whole')
    ends = [w.flush() for w in writers]
    touched = Touched(paths, offsets)
    assert touched.for_target_db(0) == [b'a\n', b'b\x00'] and touched.for_target_db(3) is None
    assert touched.describe() == dict(start=offsets, end=ends, records=6, keys=2, whole_dbs=[3])
    one = Touched(paths[:1], [0])
    assert one.describe() == dict(start=0, end=ends[0], records=3, keys=3, whole_dbs=[])


@pytest.mark.parametrize('files, offsets, expected', [
    ('/x', None, (['/x'], [0])),
    (['/x', '/y'], 0, (['/x', '/y'], [0, 0])),
    (['/x', '/y'], [0], (['/x', '/y'], [0, 0])),
    (['/x', '/y'], ['5', 7], (['/x', '/y'], [5, 7])),
    (None, 0, (None, [])),
    ([], [], (None, [])),
])
def test_keys_file_and_offsets_forms(files, offsets, expected):
    from ansible_collections.kvtools.migration.plugins.module_utils._verify_scope import LiveOptions
    live = LiveOptions(keys_file=files, keys_file_offset=offsets)
    assert (live.keys_file, live.keys_file_offset) == expected


@pytest.mark.parametrize('files, offsets, words', [
    (['/x', '/y'], 4, 'keys_file_offset gives 1 offset (4) for 2 keys logs'),
    (['/x'], [1, 2], 'gives 2 offsets ([1, 2]) for 1 keys log'),
    (['/x', '/y'], [1, 'z'], 'keys_file_offset must be a number or a list of numbers'),
    (['/x', '/y'], [1, True], 'keys_file_offset must be a number or a list of numbers'),
    (['/x', '/y'], [1, None], 'keys_file_offset must be a number or a list of numbers'),
    (['/x', '/x'], None, 'names a keys log twice'),
    ({'path': '/x'}, None, 'keys_file must be a path or a list of paths'),
    (['/x', ''], None, 'keys_file must be a path or a list of paths'),
    (None, [0, 3], 'was given without keys_file'),
])
def test_keys_file_and_offsets_mistakes(files, offsets, words):
    from ansible_collections.kvtools.migration.plugins.module_utils._verify_scope import LiveOptions
    with pytest.raises(KVError) as err:
        LiveOptions(keys_file=files, keys_file_offset=offsets)
    assert err.value.kind == 'config' and words in err.value.message, err.value.message
