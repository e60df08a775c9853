"""db_map merges (allow_db_merge) and keys skipped by on_conflict=skip, against real servers.

Engine-level cases call plugins/module_utils/_copy.py, _migrate.py and _verify.py directly; the module cases run
kv_dump_restore, kv_migrate and kv_verify through ansible-playbook.  Every case asserts what the target holds, not
only what the module said.  Key names are awkward on purpose (newline, NUL, non-UTF-8).
"""

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import iter_keys_log
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key
from ansible_collections.kvtools.migration.plugins.module_utils._migrate import Migrate, MigrateOptions
from ansible_collections.kvtools.migration.plugins.module_utils._verify import Verifier
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions
from tests.support import compare

SHARED = [b'both\nnew line', b'both\x00nul', b'both\xff\xfe']   # in source dbs 1 and 7, different values
ONLY1 = [b'one:a', b'one\xffonly']
ONLY7 = [b'seven:a', b'seven \x00 only']
MERGE = {'db_map': {1: 3, 7: 3}}
REFUSAL = ('db_map sends source dbs 1 and 7 into target db 3: set allow_db_merge: true (playbook: kv_allow_db_merge) '
           'to merge them; keys present in both are then handled by on_conflict')


def _eps(source, target):
    return Endpoint(source.endpoint(), 'source'), Endpoint(target.endpoint(), 'target')


def copy(source, target, job=DumpRestore, opts=CopyOptions, **options):
    return job(*_eps(source, target), options=opts(**options)).run()


def verify(source, target, **options):
    src, tgt = _eps(source, target)
    return Verifier(src, tgt, VerifyOptions(**options)).run()


def load_merge(server):
    """Source dbs 1 and 7: shared keys with different values (one with a TTL, one a hash), keys of their own."""
    one, seven = server.admin(1), server.admin(7)
    for key in SHARED[:2]:
        one.set(key, b'from 1')
        seven.set(key, b'from 7')
    one.hset(SHARED[2], mapping={b'f': b'1'})
    seven.hset(SHARED[2], mapping={b'f': b'7', b'g': b'x'})
    one.expire(SHARED[0], 3600)
    seven.expire(SHARED[0], 3600)
    for key in ONLY1:
        one.set(key, key)
    for key in ONLY7:
        seven.set(key, key)
    one.set(b'same', b'equal')
    seven.set(b'same', b'equal')


def shared_values(target):
    t = target.admin(3)
    return [t.get(SHARED[0]), t.get(SHARED[1]), t.hgetall(SHARED[2])]


def assert_all_keys(target):
    t = target.admin(3)
    assert sorted(t.scan_iter(count=1000)) == sorted(SHARED + ONLY1 + ONLY7 + [b'same'])
    for key in ONLY1 + ONLY7:
        assert t.get(key) == key
    assert t.ttl(SHARED[0]) > 3000
    assert target.admin(1).dbsize() == 0 and target.admin(7).dbsize() == 0


# --- refused without the switch ------------------------------------------------------------------------

@pytest.mark.parametrize('job,opts', [(DumpRestore, CopyOptions), (Migrate, MigrateOptions)])
def test_merge_refused_in_one_line_without_the_switch(redis72, valkey80, job, opts):
    load_merge(redis72)
    writes = compare.source_writes(redis72)
    with pytest.raises(KVError) as err:
        copy(redis72, valkey80, job=job, opts=opts, on_conflict='replace', **MERGE)
    assert err.value.kind == 'config'
    assert str(err.value.message) == REFUSAL
    assert '[(' not in err.value.message and '\n' not in err.value.message
    assert all(valkey80.admin(d).dbsize() == 0 for d in (1, 3, 7))
    with pytest.raises(KVError) as verr:
        verify(redis72, valkey80, **MERGE)
    assert verr.value.message == REFUSAL
    assert compare.source_writes(redis72) == writes


# --- merged with the switch ----------------------------------------------------------------------------

@pytest.mark.parametrize('job,opts', [(DumpRestore, CopyOptions), (Migrate, MigrateOptions)])
@pytest.mark.parametrize('on_conflict,winner', [('skip', b'from 1'), ('replace', b'from 7')])
def test_merge_copies_and_verifies_green(redis72, valkey80, tmp_path, job, opts, on_conflict, winner):
    load_merge(redis72)
    skipped = str(tmp_path / 'skipped.keys')
    result = copy(redis72, valkey80, job=job, opts=opts, on_conflict=on_conflict, allow_db_merge=True,
                  skipped_keys_file=skipped, **MERGE)
    assert result['totals']['failed'] == 0, result['failures']
    assert result['db_merges'] == {'3': [1, 7]}
    assert result['totals']['conflicts'] == 3
    assert result['totals']['skipped' if on_conflict == 'skip' else 'replaced'] == 3
    # the target: every key, the shared ones with the value on_conflict keeps (skip: db 1, written first)
    assert_all_keys(valkey80)
    assert shared_values(valkey80) == [winner, winner, {b'f': winner[-1:]} if on_conflict == 'skip'
                                       else {b'f': b'7', b'g': b'x'}]
    recorded = sorted(iter_keys_log(skipped))
    assert recorded == (sorted((7, k) for k in SHARED) if on_conflict == 'skip' else [])

    # verify knows the mapping: green, nothing extra, the shared keys named as chosen
    for skipped_file in ([skipped, None] if on_conflict == 'skip' else [None]):
        checked = verify(redis72, valkey80, allow_db_merge=True, on_conflict=on_conflict,
                         skipped_keys_file=skipped_file, **MERGE)
        assert checked['consistent'] is True, checked['summary']
        total = checked['totals']
        assert total['extra'] == total['missing'] == total['value_differs'] == 0
        chosen = 'skipped' if skipped_file else 'merged'
        assert total[chosen] == 3 and total['skipped' if chosen == 'merged' else 'merged'] == 0, total
        assert sorted(d['key'] for d in checked['differences']) == sorted(sample_key(k) for k in SHARED)
        loser = 7 if on_conflict == 'skip' else 1
        assert all(d['db'] == loser and d['target_db'] == 3 for d in checked['differences']), checked['differences']
        assert 'consistent with the choices of the copy' in checked['summary']
    # without on_conflict verify cannot know which value is right: named as merge conflicts
    unknown = verify(redis72, valkey80, allow_db_merge=True, **MERGE)
    assert unknown['consistent'] is True and unknown['totals']['merge_conflicts'] == 3, unknown['totals']
    assert {d['kind'] for d in unknown['differences']} == {'merge_conflict'}
    # a second copy writes nothing
    again = copy(redis72, valkey80, job=job, opts=opts, on_conflict=on_conflict, allow_db_merge=True, **MERGE)
    assert again['changed'] is False and again['totals']['copied'] == 0


def test_merge_verify_says_which_db_should_have_won(redis72, valkey80):
    """The target holds db 1's values, but replace keeps the later db's: a difference, naming both dbs."""
    load_merge(redis72)
    copy(redis72, valkey80, on_conflict='skip', allow_db_merge=True, **MERGE)
    wrong = verify(redis72, valkey80, allow_db_merge=True, on_conflict='replace', **MERGE)
    assert wrong['consistent'] is False
    assert wrong['totals']['value_differs'] == 3 and wrong['totals']['merged'] == 0
    diff = wrong['differences'][0]
    assert diff['db'] == 7 and diff['target_db'] == 3
    assert "holds source db 1's, but on_conflict=replace keeps source db 7's" in diff['detail']
    assert 'source db 7 (target db 3)' in wrong['summary']
    # a value in neither merged db is a plain difference
    valkey80.admin(3).set(ONLY1[0], b'changed')
    plain = verify(redis72, valkey80, allow_db_merge=True, on_conflict='skip', **MERGE)
    assert plain['consistent'] is False and plain['totals']['value_differs'] == 1
    assert plain['differences'][0]['key'] == sample_key(ONLY1[0]) and plain['differences'][0]['db'] == 1


def test_merge_with_on_conflict_fail_stops_before_writing(redis72, valkey80):
    load_merge(redis72)
    with pytest.raises(KVError) as err:
        copy(redis72, valkey80, allow_db_merge=True, **MERGE)
    assert err.value.kind == 'conflict'
    assert 'db_map sends source dbs 1 and 7 into target db 3, and 3 key(s)' in err.value.message
    assert 'Nothing was written' in err.value.message
    assert all(valkey80.admin(d).dbsize() == 0 for d in range(16))
    # without conflicting keys fail merges fine
    for key in SHARED:
        redis72.admin(7).delete(key)
    result = copy(redis72, valkey80, allow_db_merge=True, **MERGE)
    assert result['totals']['failed'] == 0 and result['totals']['identical'] == 1
    assert valkey80.admin(3).dbsize() == len(SHARED + ONLY1 + ONLY7) + 1
    assert verify(redis72, valkey80, allow_db_merge=True, on_conflict='fail', **MERGE)['consistent'] is True


# --- on_conflict: skip ends green -------------------------------------------------------------------------

@pytest.mark.parametrize('job,opts', [(DumpRestore, CopyOptions), (Migrate, MigrateOptions)])
def test_skipped_keys_are_reported_not_failed(redis72, valkey80, tmp_path, job, opts):
    src = redis72.admin(0)
    keys = [b'k\nnl', b'k\x00nul', b'k\xff\xfe', b'plain']
    for key in keys:
        src.set(key, b'source')
    tgt = valkey80.admin(0)
    for key in keys[:3]:
        tgt.set(key, b'target was here')
    skipped = str(tmp_path / 'skipped.keys')
    result = copy(redis72, valkey80, job=job, opts=opts, on_conflict='skip', skipped_keys_file=skipped)
    assert result['totals']['skipped'] == 3 and result['totals']['copied'] == 1
    assert [tgt.get(k) for k in keys] == [b'target was here'] * 3 + [b'source']
    assert sorted(iter_keys_log(skipped)) == sorted((0, k) for k in keys[:3])

    plain = verify(redis72, valkey80)
    assert plain['consistent'] is False and plain['totals']['value_differs'] == 3
    checked = verify(redis72, valkey80, skipped_keys_file=skipped)
    assert checked['consistent'] is True, checked['summary']
    assert checked['totals']['skipped'] == 3 and checked['totals']['value_differs'] == 0
    assert sorted(d['key'] for d in checked['differences']) == sorted(sample_key(k) for k in keys[:3])
    assert all(d['kind'] == 'skipped' and d['detail'] == 'skipped by on_conflict=skip, target value kept'
               for d in checked['differences'])
    assert '3 keys skipped by on_conflict=skip (target value kept)' in checked['summary']
    # a difference the run did not choose still fails
    tgt.set(b'plain', b'changed behind our back')
    broken = verify(redis72, valkey80, skipped_keys_file=skipped)
    assert broken['consistent'] is False and broken['totals']['value_differs'] == 1
    assert broken['totals']['skipped'] == 3
    # a skipped key that went missing is missing, not skipped
    tgt.set(b'plain', b'source')
    tgt.delete(keys[0])
    gone = verify(redis72, valkey80, skipped_keys_file=skipped)
    assert gone['consistent'] is False and gone['totals']['missing'] == 1 and gone['totals']['skipped'] == 2


def test_skipped_keys_file_missing_is_a_config_error(redis72, valkey80, tmp_path):
    with pytest.raises(KVError) as err:
        verify(redis72, valkey80, skipped_keys_file=str(tmp_path / 'nope.keys'))
    assert err.value.kind == 'config' and 'skipped_keys_file' in err.value.message


# --- through ansible-playbook --------------------------------------------------------------------------

def test_modules_merge_and_skip(redis72, valkey80, run_module, tmp_path):
    load_merge(redis72)
    args = dict(source=redis72.endpoint(), target=valkey80.endpoint(), db_map={'1': 3, '7': 3})
    refused = run_module('kvtools.migration.kv_dump_restore', dict(args, on_conflict='replace'))
    assert refused.get('failed') and refused['error'] == 'config'
    assert REFUSAL in refused['msg'] and '[(' not in refused['msg']
    assert valkey80.admin(3).dbsize() == 0
    refused = run_module('kvtools.migration.kv_verify', args)
    assert refused.get('failed') and REFUSAL in refused['msg']

    skipped = str(tmp_path / 'skipped.keys')
    done = run_module('kvtools.migration.kv_migrate',
                      dict(args, on_conflict='skip', allow_db_merge=True, skipped_keys_file=skipped))
    assert not done.get('failed'), done.get('msg')
    assert shared_values(valkey80)[:2] == [b'from 1', b'from 1']
    assert_all_keys(valkey80)
    checked = run_module('kvtools.migration.kv_verify',
                         dict(args, allow_db_merge=True, on_conflict='skip', skipped_keys_file=skipped))
    assert not checked.get('failed'), checked.get('msg')
    assert checked['consistent'] is True and checked['totals']['skipped'] == 3
