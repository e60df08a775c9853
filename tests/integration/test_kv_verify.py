"""kv_verify against real servers.

Each kind of difference is planted on its own into a clean copy and must be reported with the right
kind, key and counts; clean copies across engines and RDB versions must verify.  The engine is called
directly (plugins/module_utils/_verify.py) for most cases, and through ansible-playbook for the
module's own behaviour (failing with the summary, check mode, the report file).
"""

import json
import os
import threading
import time

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _wire
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key
from ansible_collections.kvtools.migration.plugins.module_utils._verify import Verifier
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions
from tests.conftest import assert_no_secret
from tests.support import compare, data

KINDS = ('missing', 'extra', 'type_differs', 'value_differs', 'ttl_differs')
NON_UTF8 = b'\xff\xfe non-utf8 \x00 nul'


def _ep(server, label, user='migrator'):
    return Endpoint(server if isinstance(server, dict) else server.endpoint(user), label)


def verify(source, target, user='migrator', **options):
    """Run the engine: ``source``/``target`` are test Servers or endpoint dicts."""
    return Verifier(_ep(source, 'source', user), _ep(target, 'target', user), VerifyOptions(**options)).run()


def copy(source, target, **options):
    result = DumpRestore(_ep(source, 'source'), _ep(target, 'target'), CopyOptions(**options)).run()
    assert result['totals']['failed'] == 0
    return result


def load_dbs(server, dbs, big=0):
    keys = {}
    for db in dbs:
        keys[db] = data.load_all_types(server.admin(db), prefix=b'db%d:' % db, big=big)
    return keys


def assert_only(result, kind, key, db=0, count=1, conflicts=None):
    """Exactly ``count`` differences of ``kind`` (the first for ``key``), nothing else."""
    assert result['consistent'] is False, result['summary']
    for name in KINDS:
        assert result['totals'][name] == (count if name == kind else 0), (name, result['totals'])
    expected_conflicts = (count if kind in ('type_differs', 'value_differs', 'ttl_differs') else 0) \
        if conflicts is None else conflicts
    assert result['totals']['conflicts'] == expected_conflicts
    diffs = result['differences']
    assert len(diffs) == count and all(d['kind'] == kind and d['db'] == db for d in diffs), diffs
    assert diffs[0]['key'] == sample_key(key)
    assert 'NOT consistent' in result['summary']
    assert result['source_changed'] is False
    assert_no_secret(result)
    return diffs[0]


def assert_consistent(result, keys):
    assert result['consistent'] is True, result['summary']
    assert result['changed'] is False
    assert result['totals']['keys'] == keys and result['totals']['identical'] == keys
    for name in KINDS + ('conflicts', 'copied', 'failed', 'expired'):
        assert result['totals'][name] == 0, name
    assert result['differences'] == []
    assert result['source_changed'] is False and result['target_changed'] is False
    assert 'consistent' in result['summary'] and 'NOT' not in result['summary']
    assert_no_secret(result)


# --- clean copies verify -------------------------------------------------------------------------

def test_clean_copy_redis70_to_valkey9_all_types_awkward_names(redis70, valkey9):
    keys = load_dbs(redis70, [0, 3], big=3000)
    copy(redis70, valkey9)
    src_writes, tgt_writes = compare.source_writes(redis70), compare.source_writes(valkey9)
    result = verify(redis70, valkey9)
    n = sum(len(k) for k in keys.values())
    assert_consistent(result, n)
    assert [(d['db'], d['target_db']) for d in result['dbs']] == [(0, 0), (3, 3)]
    for entry in result['dbs']:
        assert entry['source_keys'] == entry['target_keys'] == entry['keys'] == len(keys[0])
        assert entry['source_expires'] == entry['target_expires'] == 2   # str:ttl and hash
        assert entry['extra_check'] == 'dbsize'
    assert result['source']['engine'] == 'redis' and result['target']['engine'] == 'valkey'
    assert result['memory']['source_used_memory'] > 0 and result['memory']['target_used_memory'] > 0
    assert result['memory']['within_tolerance'] is None
    # read-only on both sides
    assert compare.source_writes(redis70) == src_writes and compare.source_writes(valkey9) == tgt_writes
    # the other modes agree
    assert_consistent(verify(redis70, valkey9, values='none'), n)
    assert_consistent(verify(redis70, valkey9, values='sample', sample_rate=0.5, workers=1, batch_size=7), n)


def test_clean_copy_valkey9_to_redis70_type_aware(valkey9, redis70):
    """Valkey 9 -> Redis 7.0 is copied with commands; payloads differ, values are equal."""
    keys = load_dbs(valkey9, [0, 2], big=3000)
    result = copy(valkey9, redis70)
    assert result['payload_path'] == 'commands'
    verified = verify(valkey9, redis70)
    assert_consistent(verified, sum(len(k) for k in keys.values()))
    # and a value changed on this path is still caught type-aware
    redis70.admin(2).zadd(b'db2:zset', {b'a': 0.2})
    assert_only(verify(valkey9, redis70), 'value_differs', b'db2:zset', db=2)


def test_redis62_pttl_source_to_valkey9_reader_user(redis62, valkey9):
    """PTTL instead of PEXPIRETIME on the source, and a read-only user on the target."""
    keys = load_dbs(redis62, [0])
    copy(redis62, valkey9)
    result = Verifier(_ep(redis62, 'source'), _ep(valkey9, 'target', 'reader'), VerifyOptions()).run()
    assert_consistent(result, len(keys[0]))
    valkey9.admin().pexpire(b'db0:str:ttl', 3600 * 1000 + 30000)
    result = Verifier(_ep(redis62, 'source'), _ep(valkey9, 'target', 'reader'), VerifyOptions()).run()
    detail = assert_only(result, 'ttl_differs', b'db0:str:ttl')
    assert 'later on the target' in detail['detail']


# --- each difference on its own ------------------------------------------------------------------

@pytest.fixture
def copied(redis70, valkey80):
    """Redis 7.0 -> Valkey 8.0, db 0 with every type, awkward names and a 50,000-field hash."""
    keys = data.load_all_types(redis70.admin(0), prefix=b'', big=50000)
    copy(redis70, valkey80)
    assert_consistent(verify(redis70, valkey80), len(keys))
    return redis70, valkey80, valkey80.admin(0), len(keys)


def test_missing_key(copied):
    src, tgt, t, n = copied
    t.delete(b'list')
    result = verify(src, tgt)
    detail = assert_only(result, 'missing', b'list')
    assert result['totals']['keys'] == n and result['totals']['identical'] == n - 1
    assert result['dbs'][0]['extra_check'] == 'scan'
    assert detail['detail'] == 'on the source, not on the target'
    assert '1 key missing on the target' in result['summary']


def test_extra_key(copied):
    src, tgt, t, n = copied
    t.set(b'only on target', b'x')
    result = verify(src, tgt)
    assert_only(result, 'extra', b'only on target')
    assert result['totals']['identical'] == n and result['dbs'][0]['target_keys'] == n + 1
    assert '1 extra key on the target' in result['summary']


def test_changed_field_in_big_hash(copied):
    src, tgt, t, n = copied
    assert t.hlen(b'big:hash') == 50000
    t.hset(b'big:hash', b'f31337', b'changed')
    result = verify(src, tgt)
    detail = assert_only(result, 'value_differs', b'big:hash')
    assert detail['detail'] == 'hash values differ'
    assert result['totals']['identical'] == n - 1


def test_changed_list_order(copied):
    src, tgt, t, n = copied
    assert t.lrange(b'list', 0, -1) == [b'a', b'', b'a', b'\xff\n']
    t.lset(b'list', 0, b'')
    t.lset(b'list', 1, b'a')      # same elements, other order
    assert_only(verify(src, tgt), 'value_differs', b'list')


def test_lost_ttl(copied):
    src, tgt, t, n = copied
    t.persist(b'str:ttl')
    detail = assert_only(verify(src, tgt), 'ttl_differs', b'str:ttl')
    assert detail['detail'].endswith('on the source, no TTL on the target')


def test_ttl_off_by_more_than_the_tolerance(copied):
    src, tgt, t, n = copied
    at = src.admin().pexpiretime(b'hash')
    t.pexpireat(b'hash', at + 1500)
    assert_consistent(verify(src, tgt), n)                      # 1.5 s: within the default 2 s
    detail = assert_only(verify(src, tgt, ttl_tolerance=1), 'ttl_differs', b'hash')
    assert detail['detail'] == 'expires 1.5 s later on the target than on the source (tolerance 1.0 s)'
    t.pexpireat(b'hash', at - 10000)
    detail = assert_only(verify(src, tgt), 'ttl_differs', b'hash')
    assert 'earlier on the target' in detail['detail']
    # TTLs are compared in every values mode
    assert_only(verify(src, tgt, values='none'), 'ttl_differs', b'hash')


def test_type_differs(copied):
    src, tgt, t, n = copied
    t.delete(b'set')
    t.rpush(b'set', b'm1', b'', b'\xfe')
    detail = assert_only(verify(src, tgt), 'type_differs', b'set')
    assert detail['detail'] == 'set on the source, list on the target'
    detail = assert_only(verify(src, tgt, values='none'), 'type_differs', b'set')
    assert detail['detail'] == 'set on the source, list on the target'


def test_non_utf8_key_missing(copied):
    src, tgt, t, n = copied
    assert t.delete(NON_UTF8) == 1
    result = verify(src, tgt)
    detail = assert_only(result, 'missing', NON_UTF8)
    assert detail['key'] == '\\xff\\xfe non-utf8 \\x00 nul'
    assert detail['key'] in result['summary']


def test_changed_string_and_string_turned_hash(copied):
    src, tgt, t, n = copied
    t.set(b'with space', b'other value')
    detail = assert_only(verify(src, tgt), 'value_differs', b'with space')
    assert detail['detail'] == 'string values differ'
    t.delete(b'with space')
    t.hset(b'with space', b'f', b'v')
    detail = assert_only(verify(src, tgt), 'type_differs', b'with space')
    assert detail['detail'] == 'string on the source, hash on the target'


def test_every_awkward_name_missing_and_the_values_modes(copied):
    src, tgt, t, n = copied
    t.delete(*data.AWKWARD_KEYS)
    t.hset(b'hash', b'f 2', b'changed')
    result = verify(src, tgt, max_reported=5)
    assert result['totals']['missing'] == len(data.AWKWARD_KEYS) and result['totals']['value_differs'] == 1
    assert len(result['differences']) == 5
    full = verify(src, tgt)
    assert sorted(d['key'] for d in full['differences'] if d['kind'] == 'missing') == \
        sorted(sample_key(k) for k in data.AWKWARD_KEYS)
    # values=none sees the key sets but not the value; sample_rate=1 compares every value
    quick = verify(src, tgt, values='none')
    assert quick['totals']['missing'] == len(data.AWKWARD_KEYS) and quick['totals']['value_differs'] == 0
    sampled = verify(src, tgt, values='sample', sample_rate=1)
    assert sampled['totals']['value_differs'] == 1


def test_mostly_strings_and_mostly_hashes_small_batches(redis70, valkey80):
    """Strings are read with MGET, other types with DUMP; each read path switches to the other when a
    part holds mostly keys of the other kind.  A difference of each kind is caught in both dbs."""
    for db, strings, hashes in ((0, 600, 20), (1, 20, 600)):
        pipe = redis70.admin(db).pipeline(transaction=False)
        for i in range(strings):
            pipe.set(b's:%d' % i, b'value %d' % i)
        for i in range(hashes):
            pipe.hset(b'h:%d' % i, mapping={b'a': b'%d' % i, b'b': b'x'})
        pipe.execute()
    copy(redis70, valkey80)
    for db in (0, 1):
        t = valkey80.admin(db)
        t.set(b's:7', b'changed')
        t.hset(b'h:7', b'b', b'changed')
        t.delete(b's:8', b'h:8')
        t.persist(b's:9')
        t.delete(b's:10')
        t.rpush(b's:10', b'now a list')
    redis70.admin(0).expire(b's:9', 600)
    redis70.admin(1).expire(b's:9', 600)
    valkey80.admin(0).persist(b's:9')
    valkey80.admin(1).persist(b's:9')
    result = verify(redis70, valkey80, workers=1, batch_size=100)
    for entry in result['dbs']:
        assert (entry['missing'], entry['value_differs'], entry['ttl_differs'], entry['type_differs']) == (2, 2, 1, 1)
        assert entry['conflicts'] == 4 and entry['identical'] == entry['keys'] - 2 - 4
    keys = sorted((d['db'], d['kind'], d['key']) for d in result['differences'])
    assert keys == sorted((db, kind, key) for db in (0, 1) for kind, key in (
        ('missing', 's:8'), ('missing', 'h:8'), ('value_differs', 's:7'), ('value_differs', 'h:7'),
        ('ttl_differs', 's:9'), ('type_differs', 's:10')))


@pytest.mark.parametrize('parser', ['hiredis', 'python'])
def test_one_changed_value_among_many(parser, redis70, valkey80, monkeypatch):
    """Batches where nothing but one value or one TTL differs: strings in db 0, hashes in db 1.  With
    hiredis the expiry replies of string batches are compared as raw lines; redis-py's parser reads them
    one by one."""
    if parser == 'hiredis' and not _wire.HAS_HIREDIS:
        pytest.skip('hiredis is not installed')
    monkeypatch.setattr(_wire, 'HAS_HIREDIS', parser == 'hiredis')
    for db in (0, 1):
        pipe = redis70.admin(db).pipeline(transaction=False)
        for i in range(3000):
            if db == 0:
                pipe.set(b's:%d' % i, b'value %d' % i, px=3600000 if i % 3 else None)
            else:
                pipe.hset(b'h:%d' % i, mapping={b'f': b'value %d' % i})
                if i % 3:
                    pipe.pexpire(b'h:%d' % i, 3600000)
        pipe.execute()
    copy(redis70, valkey80)
    assert_consistent(verify(redis70, valkey80), 6000)
    valkey80.admin(0).set(b's:1234', b'value 1235', keepttl=True)
    valkey80.admin(0).pexpireat(b's:2002', redis70.admin(0).pexpiretime(b's:2002') + 10000)
    valkey80.admin(1).hset(b'h:1234', b'f', b'value 1235')
    for workers, batch in ((1, 1000), (2, 100)):
        result = verify(redis70, valkey80, workers=workers, batch_size=batch)
        assert result['totals']['value_differs'] == 2 and result['totals']['ttl_differs'] == 1
        assert result['totals']['conflicts'] == 3
        assert result['totals']['identical'] == 5997 and result['totals']['keys'] == 6000
        assert sum(result['totals'][k] for k in KINDS) == 3
        assert sorted((d['db'], d['key'], d['detail']) for d in result['differences']) == [
            (0, 's:1234', 'string values differ'),
            (0, 's:2002', 'expires 10.0 s later on the target than on the source (tolerance 2.0 s)'),
            (1, 'h:1234', 'hash values differ')]


def test_user_without_mget_falls_back_to_dump(redis70, valkey80):
    data.load_all_types(redis70.admin(0))
    copy(redis70, valkey80)
    valkey80.admin().set(b'with space', b'other value')
    user = dict(redis70.endpoint('reader'))
    for server in (redis70, valkey80):
        server.admin().execute_command('ACL', 'SETUSER', 'nomget', 'reset', 'on', '>nomget-Secret-5', '~*',
                                       '+@read', '-mget', '+scan', '+dump', '+info', '+select', '+hello', '+ping')
    try:
        user.update(username='nomget', password='nomget-Secret-5')
        tuser = dict(valkey80.endpoint('reader'), username='nomget', password='nomget-Secret-5')
        result = verify(user, tuser)
        detail = assert_only(result, 'value_differs', b'with space')
        assert detail['detail'] == 'string values differ'
        assert_no_secret(result, 'nomget-Secret-5')
    finally:
        for server in (redis70, valkey80):
            server.admin().execute_command('ACL', 'DELUSER', 'nomget')


# --- scope: dbs, db_map, match --------------------------------------------------------------------

def test_db_map_and_target_only_db(redis70, valkey80):
    data.load_all_types(redis70.admin(1), prefix=b'one:')
    copy(redis70, valkey80, db_map={1: 4})
    valkey80.admin(6).set(b'stray', b'x')
    result = verify(redis70, valkey80, db_map={'1': 4}, fail_on_mismatch=False)
    assert [(d['db'], d['target_db']) for d in result['dbs']] == [(1, 4), (6, 6)]
    assert result['dbs'][0]['identical'] == result['dbs'][0]['keys'] > 0 and result['dbs'][0]['extra'] == 0
    assert result['dbs'][1]['extra'] == 1 and result['dbs'][1]['keys'] == 0
    assert result['differences'] == [dict(db=6, target_db=6, key='stray', kind='extra', detail='on the target only')]
    only = verify(redis70, valkey80, dbs=[1], db_map={1: 4})
    assert only['consistent'] is True and len(only['dbs']) == 1
    with pytest.raises(KVError) as info:
        verify(redis70, valkey80, dbs=[1], db_map={1: 16})
    assert info.value.kind == 'db' and 'databases = 16' in str(info.value)


def test_match_limits_both_directions(redis70, valkey80):
    a = redis70.admin()
    for i in range(300):
        a.set(b'user:%d' % i, b'v%d' % i)
    copy(redis70, valkey80)
    valkey80.admin().set(b'user:extra', b'x')
    valkey80.admin().set(b'other:extra', b'x')
    valkey80.admin().delete(b'user:7')
    result = verify(redis70, valkey80, match='user:*')
    assert result['totals']['keys'] == 300 and result['totals']['missing'] == 1 and result['totals']['extra'] == 1
    found = sorted((d['kind'], d['key']) for d in result['differences'])
    assert found == [('extra', 'user:extra'), ('missing', 'user:7')]


def test_memory_tolerance_gates_only_when_set(redis70, valkey80):
    data.load_all_types(redis70.admin(), big=20000)
    copy(redis70, valkey80)
    assert verify(redis70, valkey80, memory_tolerance=100)['consistent'] is True
    valkey80.admin(9).set(b'ballast', b'x' * (8 << 20))     # 8 MiB more on the target, in a db not compared
    result = verify(redis70, valkey80, dbs=[0], memory_tolerance=0.2)
    assert result['consistent'] is False and result['memory']['within_tolerance'] is False
    assert result['memory']['ratio'] > 1.2 and 'outside memory_tolerance 0.2' in result['summary']
    assert sum(result['totals'][k] for k in KINDS) == 0


def test_empty_servers(redis70, valkey80):
    result = verify(redis70, valkey80)
    assert result['consistent'] is True and result['dbs'] == [] and result['totals']['keys'] == 0
    assert 'no non-empty db' in result['summary']


# --- a source that changes ------------------------------------------------------------------------

def test_source_written_during_verification(redis70, valkey80):
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(20000):
        pipe.set(b'k:%d' % i, b'v')
    pipe.execute()
    copy(redis70, valkey80)
    stop = threading.Event()
    written = []

    def writer():
        client = redis70.admin()
        n = 0
        while not stop.is_set():
            client.set(b'new:%d' % n, b'x')
            n += 1
            time.sleep(0.001)
        written.append(n)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.05)
        warned = []
        result = Verifier(_ep(redis70, 'source', 'migrator'), _ep(valkey80, 'target', 'migrator'),
                          VerifyOptions(workers=1, batch_size=50), warn=warned.append).run()
    finally:
        stop.set()
        thread.join()
    assert result['source_changed'] is True and result['source_changes']['writes'] > 0
    assert result['target_changed'] is False
    assert 'the source changed during the verification' in result['summary']
    assert any('the source changed during the verification' in w and 'may come from those changes' in w
               for w in warned)
    # keys written meanwhile and seen by SCAN are missing on the target; the summary says why
    if result['consistent'] is False:
        assert result['totals']['missing'] > 0 and 'may come from those changes' in result['summary']
    assert result['totals']['identical'] == 20000


def test_keys_expiring_are_worded_as_expiries(redis70, valkey80):
    a = redis70.admin()
    pipe = a.pipeline(transaction=False)
    for i in range(20000):
        pipe.set(b'k:%d' % i, b'v')
    pipe.execute()
    copy(redis70, valkey80)
    for server in (redis70, valkey80):   # the same short-lived keys on both sides
        pipe = server.admin().pipeline(transaction=False)
        for i in range(50):
            pipe.set(b'soon:%d' % i, b'v', px=300)
        pipe.execute()
    before = compare.source_writes(redis70)
    started = time.time()
    result = verify(redis70, valkey80, workers=1, batch_size=5)
    assert time.time() - started > 0.6, 'the verification must outlast the keys'
    assert compare.source_writes(redis70) == before
    assert result['consistent'] is True and result['totals']['identical'] >= 20000
    # the keys expired during the run: counted as expiries, not writes, and the summary says so
    assert result['source_changed'] is True
    assert result['source_changes']['writes'] == 0 and result['source_changes']['expiries'] > 0
    assert 'key expiries or evictions counted' in result['summary'] and ' write' not in result['summary']
    assert result['dbs'][0]['extra_check'] == 'scan'


# --- through ansible-playbook ---------------------------------------------------------------------

def test_module_fails_with_summary_report_and_check_mode(redis70, valkey80_tls, run_module, tmp_path):
    tmp_path = tmp_path / 'reports'
    tmp_path.mkdir()
    data.load_all_types(redis70.admin(0))
    data.load_all_types(redis70.admin(2), prefix=b'two:')
    copy(redis70, valkey80_tls)
    args = {'source': redis70.endpoint(), 'target': valkey80_tls.endpoint()}
    ok = run_module('kv_verify', dict(args, report=str(tmp_path / 'ok.json')))
    assert not ok.get('failed'), ok.get('msg')
    assert ok['changed'] is False and ok['consistent'] is True and ok['totals']['identical'] == ok['totals']['keys']
    assert [d['db'] for d in ok['dbs']] == [0, 2]
    assert ok['target']['tls'] is True

    valkey80_tls.admin(2).delete(b'two:with\nnewline')
    report = tmp_path / 'verify.json'
    report.write_text('old report')
    old = open(str(report))
    failed = run_module('kv_verify', dict(args, report=str(report)))
    assert failed['failed'] is True and failed['error'] == 'mismatch'
    assert failed['msg'] == failed['summary'] and 'NOT consistent' in failed['msg']
    assert failed['consistent'] is False and failed['totals']['missing'] == 1
    assert failed['differences'] == [dict(db=2, target_db=2, key='two:with\\nnewline', kind='missing',
                                          detail='on the source, not on the target')]
    # the report replaced the old file by a rename (the old inode still holds the old text), mode 0600
    assert old.read() == 'old report'
    old.close()
    saved = json.loads(report.read_text())
    assert saved['totals'] == failed['totals'] and saved['differences'] == failed['differences']
    assert saved['consistent'] is False and saved['summary'] == failed['summary']
    assert oct(os.stat(str(report)).st_mode & 0o777) == '0o600'
    assert sorted(os.listdir(str(tmp_path))) == ['ok.json', 'verify.json'], 'a temporary file was left behind'

    md = tmp_path / 'verify.md'
    kept = run_module('kv_verify', dict(args, fail_on_mismatch=False, report=str(md)))
    assert not kept.get('failed') and kept['consistent'] is False and kept['totals']['missing'] == 1
    text = md.read_text()
    assert text.startswith('# kv_verify report') and '**NOT consistent**' in text
    assert '| 2 | 2 | missing | `two:with\\nnewline` |' in text
    assert oct(os.stat(str(md)).st_mode & 0o777) == '0o600'

    check = run_module('kv_verify', dict(args, fail_on_mismatch=False, report=str(tmp_path / 'check.json')),
                       check=True)
    assert not check.get('failed') and check['changed'] is False
    assert check['totals'] == kept['totals'] and check['differences'] == kept['differences']
    assert not (tmp_path / 'check.json').exists(), 'check mode wrote the report file'
    for result in (ok, failed, kept, check):
        assert_no_secret(result)
        assert_no_secret(result['_output'])
    for path in (report, md):
        assert_no_secret(path.read_text())


def test_module_bad_password_and_bad_option(redis70, valkey80, run_module):
    args = {'source': redis70.endpoint(), 'target': valkey80.endpoint(password='wrong-Secret-9')}
    result = run_module('kv_verify', args)
    assert result['failed'] and result['error'] == 'auth'
    assert_no_secret(result, 'wrong-Secret-9')
    assert_no_secret(result['_output'], 'wrong-Secret-9')
    bad = run_module('kv_verify', {'source': redis70.endpoint(), 'target': valkey80.endpoint(), 'sample_rate': 2,
                                   'values': 'sample'})
    assert bad['failed'] and 'sample_rate' in bad['msg']
