"""kv_verify compares what both servers hold beyond the value: hash field TTLs, stream metadata, consumer groups
and pending entries; losses the target cannot avoid (on_unsupported: drop) are reported as such."""

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
from ansible_collections.kvtools.migration.plugins.module_utils._verify import Verifier
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions
from tests.support import data


def verify(source, target, **options):
    options.setdefault('fail_on_mismatch', False)
    return Verifier(Endpoint(source.endpoint(), 'source'), Endpoint(target.endpoint(), 'target'),
                    VerifyOptions(**options)).run()


def copy(source, target, **options):
    return DumpRestore(Endpoint(source.endpoint(), 'source'), Endpoint(target.endpoint(), 'target'),
                       CopyOptions(**options)).run()


def kinds(result):
    return sorted(set(d['kind'] for d in result['differences']))


@pytest.mark.parametrize('flavour', ['redis74', 'valkey91'])
def test_planted_lost_field_ttl_pending_entry_and_group_id_are_found_on_same_version_pairs(flavour_server, flavour):
    """Failed on main: each of the three was 'consistent ... values and TTLs match'."""
    source, target = flavour_server(flavour, 'source'), flavour_server(flavour, 'target')
    data.load_compat(source.admin())
    data.load_compat(source.admin(3), prefix=b'db3:')
    copied = copy(source, target)
    assert copied['payload_path'] == 'restore' and copied['totals']['failed'] == 0
    clean = verify(source, target)
    assert clean['consistent'] is True, clean['differences']
    tgt = target.admin()
    tgt.execute_command('HPERSIST', b'hash:fttl', 'FIELDS', 1, b'a')               # a lost field TTL
    tgt.xack(b'stream:pel', b'workers', b'5-1')                                     # a lost pending entry
    tgt.execute_command('XGROUP', 'SETID', b'stream:pel', b'idle\ngroup', b'1-1')  # a wrong group id
    tgt3 = target.admin(3)
    tgt3.execute_command('XGROUP', 'SETID', b'db3:stream:empty+group', b'g', b'0-0', 'ENTRIESREAD', 7)
    result = verify(source, target)
    assert result['consistent'] is False
    total = result['totals']
    assert total['field_ttl_differs'] == 1
    assert total['pending_differs'] == 1
    assert total['group_differs'] == 2
    assert total['value_differs'] == total['missing'] == total['extra'] == total['ttl_differs'] == 0
    by_kind = dict((d['kind'], d) for d in result['differences'])
    assert by_kind['field_ttl_differs']['key'] == 'hash:fttl'
    assert 'no TTL on the target' in by_kind['field_ttl_differs']['detail']
    assert by_kind['pending_differs']['key'] == 'stream:pel'
    assert '5-1 missing on the target' in by_kind['pending_differs']['detail']
    groups = [d for d in result['differences'] if d['kind'] == 'group_differs']
    assert any('last-delivered-id 3-1 on the source, 1-1 on the target' in d['detail'] for d in groups)
    assert any('entries-read' in d['detail'] and d['db'] == 3 for d in groups)
    assert 'stream with other pending entries' in result['summary']


def test_stream_metadata_difference_is_found(redis74, valkey80):
    src = redis74.admin()
    data.load_streams(src)
    copy(redis74, valkey80)
    assert verify(redis74, valkey80)['consistent'] is True
    valkey80.admin().execute_command('XSETID', b'stream:drained', b'9-0')
    result = verify(redis74, valkey80)
    assert result['totals']['stream_meta_differs'] == 1 and kinds(result) == ['stream_meta_differs']


def test_dropped_field_ttls_are_reported_as_such_not_as_inconsistency(redis74, valkey80):
    data.load_compat(redis74.admin())
    copy(redis74, valkey80, on_unsupported='drop')
    result = verify(redis74, valkey80)
    assert result['consistent'] is True, result['differences']
    assert result['totals']['field_ttls_dropped'] == 2
    assert kinds(result) == ['field_ttl_dropped']
    assert 'on_unsupported: drop' in result['summary'] and '2 hashes of the source lost their field TTLs' in \
        result['summary']


def test_cross_version_copy_with_field_ttls_verifies_exactly(redis74, valkey9):
    data.load_compat(redis74.admin())
    copy(redis74, valkey9)
    assert verify(redis74, valkey9)['consistent'] is True
    valkey9.admin().execute_command('HPEXPIRE', b'hash:fttl:big', 50000, 'FIELDS', 1, b'f1')
    result = verify(redis74, valkey9)
    assert kinds(result) == ['field_ttl_differs']
