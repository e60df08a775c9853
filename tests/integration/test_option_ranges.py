"""Every numeric option out of its range: one ``error: config`` naming option, value and range, nothing written.

Each case runs the real module through ansible-playbook against real servers (a source holding keys and an
empty target), half of them in check mode; the target must still be empty and the source unchanged afterwards.
"""

import pytest

from tests.conftest import assert_no_secret

SRC = 'source'
TGT = 'target'

# (module, {option: value} at the top level or {endpoint: {option: value}}, label in the message, allowed range)
CASES = [
    ('kv_dump_restore', {'batch_size': 0}, 'batch_size', 'from 1 to 1000000'),
    ('kv_dump_restore', {'workers': -1}, 'workers', 'from 1 to 64'),
    ('kv_dump_restore', {'chunk_size': -5}, 'chunk_size', 'from 1 to 1000000'),
    ('kv_dump_restore', {'dbs': [0, -2]}, 'dbs', 'from 0 to 2147483647'),
    ('kv_dump_restore', {TGT: {'connect_timeout': -1}}, 'target.connect_timeout', 'greater than 0 and at most 86400'),
    ('kv_dump_restore', {SRC: {'socket_timeout': 0}}, 'source.socket_timeout', 'greater than 0 and at most 86400'),
    ('kv_migrate', {'batch_size': 0}, 'batch_size', 'from 1 to 1000000'),
    ('kv_migrate', {'batch_bytes': 0}, 'batch_bytes', 'from 1 to 1073741824'),
    ('kv_migrate', {'timeout': -1}, 'timeout', 'from 1 to 86400000'),
    ('kv_migrate', {'workers': 0}, 'workers', 'from 1 to 64'),
    ('kv_migrate', {TGT: {'migrate_port': 70000}}, 'target.migrate_port', 'from 1 to 65535'),
    ('kv_migrate', {TGT: {'connect_timeout': 0}}, 'target.connect_timeout', 'greater than 0 and at most 86400'),
    ('kv_verify', {'max_reported': -1}, 'max_reported', 'from 0 to 1000000'),
    ('kv_verify', {'sample_rate': 1.5, 'values': 'sample'}, 'sample_rate', 'greater than 0 and at most 1'),
    ('kv_verify', {'ttl_tolerance': -1}, 'ttl_tolerance', 'from 0 to 31536000'),
    ('kv_verify', {'memory_tolerance': -0.5}, 'memory_tolerance', 'from 0 to 1000'),
    ('kv_info', {'server': {'port': 70000}}, 'server.port', 'from 1 to 65535'),
    ('kv_info', {'server': {'db': -1}}, 'server.db', 'from 0 to 2147483647'),
    ('kv_preflight', {SRC: {'port': 0}}, 'source.port', 'from 1 to 65535'),
    ('kv_rdb_backup', {'keep': -1}, 'keep', 'from 0 to 1000'),
    ('kv_isolate', {'renew_max_seconds': 0}, 'renew_max_seconds', 'from 1 to 604800'),
    ('kv_isolate', {'pause_ms': 0}, 'pause_ms', 'from 100 to 86400000'),
    ('kv_isolate', {'verify_window_ms': -1}, 'verify_window_ms', 'from 0 to 600000'),
    ('kv_cf_bindings', {'timeout': 0}, 'timeout', 'from 1 to 86400'),
    ('kv_cf_bindings', {'job_timeout': -1}, 'job_timeout', 'from 1 to 86400'),
    ('kv_cf_bindings', {'poll_interval': 0}, 'poll_interval', 'greater than 0 and at most 3600'),
    ('kv_wait', {'interval': 0}, 'interval', 'from 0.2 to 3600'),
    ('kv_wait', {'timeout': -1}, 'timeout', 'from 0 to 2592000'),
]


def _base_args(module, source, target, tmp_path):
    if module in ('kv_dump_restore', 'kv_migrate', 'kv_verify', 'kv_preflight'):
        return {SRC: source.endpoint('migrator'), TGT: target.endpoint('migrator')}
    if module == 'kv_info':
        return {'server': source.endpoint('migrator')}
    if module == 'kv_rdb_backup':
        return {'server': source.endpoint('migrator'), 'dest': str(tmp_path / 'backup.rdb')}
    if module == 'kv_isolate':
        return {'server': source.endpoint('migrator'), 'mode': 'pause', 'record': str(tmp_path / 'iso.json')}
    if module == 'kv_cf_bindings':  # nothing listens there: a request would fail with another error
        return {'api': 'https://127.0.0.1:9', 'token': 'tok', 'instance_guid': 'g', 'state': 'absent',
                'record': str(tmp_path / 'cf.json')}
    if module == 'kv_wait':
        return {'jid': '1.2'}
    raise AssertionError(module)


@pytest.mark.parametrize('index', range(len(CASES)), ids=['%s-%s' % (c[0], c[2]) for c in CASES])
def test_out_of_range_option_is_a_config_error(index, redis70, valkey80, run_module, tmp_path):
    module, change, label, allowed = CASES[index]
    check = index % 2 == 1
    redis70.admin().set(b'k1', b'v1')
    args = _base_args(module, redis70, valkey80, tmp_path)
    value = None
    for name, new in change.items():
        if isinstance(new, dict):
            args[name] = dict(args[name], **new)
            value = list(new.values())[0]
        else:
            args[name] = new
            value = new if not isinstance(new, list) else new[-1]
    result = run_module(module, args, check=check)
    assert result.get('failed') is True, result
    assert result.get('error') == 'config', result
    msg = result['msg']
    assert label in msg and str(value) in msg and allowed in msg, msg
    assert 'out of range' in msg
    assert_no_secret(result)
    # nothing written anywhere: target empty, source as it was, no files
    assert valkey80.admin().dbsize() == 0
    assert redis70.admin().dbsize() == 1 and redis70.admin().get(b'k1') == b'v1'
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ('play.yml', 'result.json')]
    assert leftovers == [], leftovers
