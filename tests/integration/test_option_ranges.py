"""Every numeric option out of its range: one ``error: config`` naming option, value and range, nothing written.

Each case runs the real module through ansible-playbook against real servers (a source holding keys and an
empty target), half of them in check mode.  All cases are tasks of one playbook (``ignore_errors``, each result
registered), so Ansible starts once instead of once per case; every case is still a test of its own, asserted
on its own result.  Nothing may be written: each case has its own directory for the files it names (it must
stay empty), and after the play the target must still be empty and the source unchanged.
"""

import json
import os

import pytest

from tests.conftest import _shared, assert_no_secret
from tests.support.ansible import ansible_playbook

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


def _base_args(module, source, target, case_dir):
    if module in ('kv_dump_restore', 'kv_migrate', 'kv_verify', 'kv_preflight'):
        return {SRC: source.endpoint('migrator'), TGT: target.endpoint('migrator')}
    if module == 'kv_info':
        return {'server': source.endpoint('migrator')}
    if module == 'kv_rdb_backup':
        return {'server': source.endpoint('migrator'), 'dest': os.path.join(case_dir, 'backup.rdb')}
    if module == 'kv_isolate':
        return {'server': source.endpoint('migrator'), 'mode': 'pause', 'record': os.path.join(case_dir, 'iso.json')}
    if module == 'kv_cf_bindings':  # nothing listens there: a request would fail with another error
        return {'api': 'https://127.0.0.1:9', 'token': 'tok', 'instance_guid': 'g', 'state': 'absent',
                'record': os.path.join(case_dir, 'cf.json')}
    if module == 'kv_wait':
        return {'jid': '1.2'}
    raise AssertionError(module)


def _case_args(index, source, target, case_dir):
    """The module's arguments for case ``index``, and the out-of-range value the message must name."""
    module, change, _label, _allowed = CASES[index]
    args = _base_args(module, source, target, case_dir)
    value = None
    for name, new in change.items():
        if isinstance(new, dict):
            args[name] = dict(args[name], **new)
            value = list(new.values())[0]
        else:
            args[name] = new
            value = new if not isinstance(new, list) else new[-1]
    return args, value


@pytest.fixture(scope='module')
def ranges_run(session_servers, tmp_path_factory):
    """One ansible-playbook run with every case as a task; returns the results and what was on the servers after."""
    source = _shared(session_servers, 'redis70', 'redis70')
    target = _shared(session_servers, 'valkey80', 'valkey80')
    source.admin().set(b'k1', b'v1')
    work = tmp_path_factory.mktemp('option-ranges')
    tasks, values, dirs = [], [], []
    for index, (module, _change, _label, _allowed) in enumerate(CASES):
        case_dir = str(work / ('case%02d' % index))
        os.mkdir(case_dir)
        args, value = _case_args(index, source, target, case_dir)
        values.append(value)
        dirs.append(case_dir)
        task = {'name': 'case %d' % index, 'kvtools.migration.' + module: args, 'register': 'case%d' % index,
                'ignore_errors': True}
        if index % 2 == 1:
            task['check_mode'] = True
        tasks.append(task)
    out = str(work / 'results.json')
    tasks.append({'name': 'save the results', 'ansible.builtin.copy': {
        'content': '{{ [%s] | to_json }}' % ', '.join('case%d' % i for i in range(len(CASES))),
        'dest': out, 'mode': '0600'}, 'check_mode': False})
    play = str(work / 'play.yml')
    with open(play, 'w') as fh:
        json.dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], fh)
    proc = ansible_playbook(play)
    if not os.path.exists(out):
        raise AssertionError('ansible-playbook did not run the cases:\n' + proc.stdout)
    with open(out) as fh:
        results = json.load(fh)
    after = dict(target_keys=target.admin().dbsize(), source_keys=source.admin().dbsize(),
                 source_k1=source.admin().get(b'k1'),
                 leftovers=[sorted(os.listdir(d)) for d in dirs])
    return dict(results=results, values=values, output=proc.stdout, after=after)


# one worker runs them all (make test: -n 2 --dist loadgroup), so the playbook runs once, not once per worker
@pytest.mark.xdist_group('option_ranges')
@pytest.mark.parametrize('index', range(len(CASES)), ids=['%s-%s' % (c[0], c[2]) for c in CASES])
def test_out_of_range_option_is_a_config_error(index, ranges_run):
    _module, _change, label, allowed = CASES[index]
    result, value = ranges_run['results'][index], ranges_run['values'][index]
    assert result.get('failed') is True, result
    assert result.get('error') == 'config', result
    msg = result['msg']
    assert label in msg and str(value) in msg and allowed in msg, msg
    assert 'out of range' in msg
    assert_no_secret(result)
    assert_no_secret(ranges_run['output'])
    # nothing written anywhere: no file in the case's directory, target empty, source as it was
    assert ranges_run['after']['leftovers'][index] == []
    after = ranges_run['after']
    assert after['target_keys'] == 0, 'a case wrote to the target'
    assert after['source_keys'] == 1 and after['source_k1'] == b'v1', 'a case wrote to the source'
