"""The type-aware path copies exactly: empty streams holding only a group, pending entries, consumers and
stream metadata, hash field TTLs (or refuses / counts what the target cannot hold), and temporary keys that
never outlive a crash for long.  Checked with tests/support/compare.py (not kv_verify)."""

import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _type_aware as _typed
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from tests.support import compare, data


def copy(source, target, **options):
    """Run the engine; the result's ``warnings_list`` holds what it warned."""
    warnings = []
    result = DumpRestore(Endpoint(source.endpoint(), 'source'), Endpoint(target.endpoint(), 'target'),
                         CopyOptions(**options), warn=warnings.append).run()
    result['warnings_list'] = warnings
    return result


def deep_problems(source, target, db=0, holds=True):
    return compare.differences(source.admin(db), target.admin(db), deep=True, target_holds_field_ttls=holds)


@pytest.mark.parametrize('target_flavour', ['valkey80', 'redis70'])
def test_empty_stream_with_only_a_group_is_copied_exactly(redis74, flavour_server, target_flavour):
    """Failed on main: lost (XSETID below max_deleted_entry_id) on Valkey, max-deleted-entry-id 0-1 on Redis 7.0."""
    target = flavour_server(target_flavour, 'target')
    src = redis74.admin()
    src.xgroup_create(b'queue', b'g', id=b'$', mkstream=True)
    result = copy(redis74, target)
    assert result['payload_path'] == 'commands'
    assert result['totals']['copied'] == 1 and result['totals']['failed'] == 0, result['failures']
    tgt = target.admin()
    assert tgt.exists(b'queue')
    info = tgt.xinfo_stream(b'queue')
    assert info['length'] == 0 and info['last-generated-id'] == b'0-0'
    assert info['max-deleted-entry-id'] == b'0-0' and info['entries-added'] == 0
    assert [g['name'] for g in tgt.xinfo_groups(b'queue')] == [b'g']
    assert deep_problems(redis74, target) == []
    assert not tgt.keys(b'kvtools:tmp:*')


def test_pending_entries_consumers_and_metadata_copied_then_second_run_writes_nothing(redis74, valkey80):
    """Failed on main: pending entries lists were not copied (nor consumers without pending entries)."""
    src = redis74.admin()
    data.load_streams(src)
    big = b'stream:bigpel'
    for n in range(1, 56):
        src.xadd(big, {b'n': b'%d' % n}, id=b'%d-0' % n)
    src.xgroup_create(big, b'g', id=b'0')
    src.xreadgroup(b'g', b'c1', {big: b'>'}, count=30)
    src.xreadgroup(b'g', b'c2', {big: b'>'})
    src.xdel(big, b'7-0', b'40-0', b'55-0')  # pending, deleted: the last one after every entry left
    first = copy(redis74, valkey80, chunk_size=10)  # pending lists read and claimed in chunks of 10
    assert first['totals']['failed'] == 0, first['failures']
    assert first['failures'] == []
    assert deep_problems(redis74, valkey80) == []
    tgt = valkey80.admin()
    pel = tgt.xpending_range(big, b'g', '-', '+', 100)
    assert len(pel) == 55 and pel[6]['message_id'] == b'7-0' and pel[-1]['consumer'] == b'c2'
    assert tgt.xinfo_stream(big)['length'] == 52
    consumers = sorted(c['name'] for c in tgt.xinfo_consumers(b'stream:pel', b'workers'))
    assert consumers == [b'alice', b'bob', b'carol (no pending)']
    assert tgt.xinfo_stream(b'stream:pel')['max-deleted-entry-id'] == b'2-1'
    second = copy(redis74, valkey80)
    assert second['changed'] is False and second['totals']['identical'] == second['totals']['keys'] == 4


def test_group_entries_read_kept_where_the_target_caps_it_at_entries_added(valkey9, redis82):
    """Redis 8.2 caps a new group's entries-read at the stream's entries-added: the metadata comes first."""
    data.load_streams(valkey9.admin())
    result = copy(valkey9, redis82)
    assert result['payload_path'] == 'commands' and result['totals']['failed'] == 0
    assert deep_problems(valkey9, redis82) == []
    assert redis82.admin().xinfo_groups(b'stream:drained')[0]['entries-read'] == 1


@pytest.mark.parametrize('direction', ['redis74->valkey91', 'valkey91->redis74'])
def test_hash_field_ttls_copied_exactly_where_the_target_holds_them(flavour_server, direction):
    a, b = direction.split('->')
    source, target = flavour_server(a, 'source'), flavour_server(b, 'target')
    keys, fields = data.load_field_ttls(source.admin())
    result = copy(source, target)
    assert result['payload_path'] == 'commands' and result['totals']['copied'] == 2
    assert result['unsupported'] is None and result['failures'] == []
    assert deep_problems(source, target) == []
    tgt = target.admin()
    got = tgt.execute_command('HPEXPIRETIME', b'hash:fttl', 'FIELDS', 3, b'a', b'b', b'keep')
    want = source.admin().execute_command('HPEXPIRETIME', b'hash:fttl', 'FIELDS', 3, b'a', b'b', b'keep')
    assert list(got) == list(want) and want[2] == -1
    assert abs(tgt.pexpiretime(b'hash:fttl') - source.admin().pexpiretime(b'hash:fttl')) < 1000


def test_field_ttls_the_target_cannot_hold_stop_the_copy_before_any_write(redis74, valkey80, run_module):
    """Failed on main: dropped silently (a line in failures only), the run ok."""
    src = redis74.admin()
    data.load_all_types(src)
    data.load_field_ttls(src)
    data.load_all_types(redis74.admin(3))
    plan = run_module('kv_preflight', {'source': redis74.endpoint(), 'target': valkey80.endpoint()})
    assert plan.get('failed') and plan['unsupported'] == {'hash_field_ttls': {'keys': 2, 'fields': 5}}
    assert any('5 fields of 2 hashes' in p for p in plan['problems'])
    assert any('hash field TTLs: 5 fields of 2 hashes' in line for line in plan['plan'])
    for check in (True, False):
        with pytest.raises(KVError) as err:
            DumpRestore(Endpoint(redis74.endpoint(), 'source'), Endpoint(valkey80.endpoint(), 'target'),
                        CopyOptions(check_mode=check)).run()
        assert err.value.kind == 'unsupported' and '5 fields of 2 hashes' in str(err.value)
        assert 'Nothing was written' in str(err.value)
    assert all(valkey80.admin(db).dbsize() == 0 for db in range(16))
    res = run_module('kv_dump_restore', {'source': redis74.endpoint(), 'target': valkey80.endpoint()})
    assert res.get('failed') and res['error'] == 'unsupported' and '5 fields of 2 hashes' in res['msg']
    res = run_module('kv_migrate', {'source': redis74.endpoint(), 'target': valkey80.endpoint()})
    assert res.get('failed')  # MIGRATE cannot cross from RDB 12 to Valkey 8 at all: refused first
    assert all(valkey80.admin(db).dbsize() == 0 for db in range(16))


def test_field_ttls_dropped_on_request_are_counted_and_warned(redis74, valkey80, run_module, tmp_path):
    data.load_field_ttls(redis74.admin())
    report = str(tmp_path / 'report.json')
    plan = run_module('kv_preflight', {'source': redis74.endpoint(), 'target': valkey80.endpoint(),
                                       'on_unsupported': 'drop'})
    assert not plan.get('failed') and plan['unsupported']['hash_field_ttls'] == {'keys': 2, 'fields': 5}
    res = run_module('kv_dump_restore', {'source': redis74.endpoint(), 'target': valkey80.endpoint(),
                                         'on_unsupported': 'drop', 'report': report})
    assert not res.get('failed'), res.get('msg')
    assert res['unsupported']['hash_field_ttls_dropped'] == {'keys': 2, 'fields': 5}
    assert any('5 fields of 2 hashes' in w and 'on_unsupported: drop' in w for w in res.get('warnings', []))
    with open(report) as fh:
        assert '"hash_field_ttls_dropped"' in fh.read()
    assert deep_problems(redis74, valkey80, holds=False) == [
        "lost: 2 field TTLs of b'hash:fttl'", "lost: 3 field TTLs of b'hash:fttl:big'"]
    again = run_module('kv_dump_restore', {'source': redis74.endpoint(), 'target': valkey80.endpoint(),
                                           'on_unsupported': 'drop'})
    assert again['changed'] is False and again['totals']['identical'] == 2


def test_leftover_temporary_keys_are_removed_at_the_start_and_reported(redis74, valkey80):
    """Failed on main: a kvtools:tmp:* key without expiry stayed on the target forever."""
    data.load_all_types(redis74.admin())
    tgt = valkey80.admin()
    tgt.rpush(b'kvtools:tmp:0123456789abcdef01234567', b'half')       # an old crash: no expiry
    tgt.rpush(b'kvtools:tmp:fresh', b'being built')                    # another run's, renewed just now
    tgt.pexpire(b'kvtools:tmp:fresh', _typed.TMP_TTL_MS)
    plan = copy(redis74, valkey80, check_mode=True)
    assert any('would remove 1 temporary key' in w for w in plan['warnings_list'])
    assert tgt.exists(b'kvtools:tmp:0123456789abcdef01234567')
    result = copy(redis74, valkey80, on_conflict='skip')
    assert result['leftovers_removed'] == 1
    assert any('removed 1 temporary key' in w for w in result['warnings_list'])
    assert not tgt.exists(b'kvtools:tmp:0123456789abcdef01234567')
    assert tgt.exists(b'kvtools:tmp:fresh')


def test_temporary_key_expires_when_a_copy_dies_while_building_it(redis74, valkey80):
    """A crash (here: the clean-up fails too) leaves the temporary key with an expiry, never without one."""
    src = redis74.admin()
    src.rpush(b'list', *[b'x%d' % n for n in range(50)])
    src_server, tgt_server = connect_server(Endpoint(redis74.endpoint(), 'source')), \
        connect_server(Endpoint(valkey80.endpoint(), 'target'))
    tgt_client = valkey80.admin()
    copier = _typed.TypedCopier(src, tgt_client, src_server, tgt_server, chunk=10)

    def die(*args, **kwargs):
        raise RuntimeError('killed')
    copier.tgt.pipeline = die      # the rename step
    copier.tgt.delete = die        # and the clean-up
    with pytest.raises(RuntimeError):
        copier.copy(b'list', None, False)
    left = valkey80.admin().keys(b'kvtools:tmp:*')
    assert len(left) == 1
    ttl = valkey80.admin().pttl(left[0])
    assert 0 < ttl <= _typed.TMP_TTL_MS
    assert not valkey80.admin().exists(b'list')


def test_renamed_key_never_keeps_the_temporary_expiry(redis74, valkey80):
    src = redis74.admin()
    src.rpush(b'forever', b'a', b'b')
    src.rpush(b'expiring', b'a')
    at = int(time.time() * 1000) + 3600000
    src.pexpireat(b'expiring', at)
    copy(redis74, valkey80)
    tgt = valkey80.admin()
    assert tgt.pttl(b'forever') == -1
    assert abs(tgt.pexpiretime(b'expiring') - at) < 1000
