"""The per-run reports of the playbooks: files that later runs never overwrite, and what a change ticket needs.

migrate.yml, verify.yml and rollback.yml against real servers; the reports are read back from kv_report_dir.
"""

import getpass
import glob
import hashlib
import json
import os
import re
import socket
import time

from tests.integration.test_playbook_migrate import PLAYBOOK, ROOT, load, no_secret, recap, write_inventory
from tests.support.ansible import ansible_playbook

ISO = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')


def reports(tmp_path, host, playbook):
    return sorted(glob.glob(str(tmp_path / 'reports' / ('%s-*-%s.json' % (host, playbook)))))


def latest(tmp_path, host):
    link = tmp_path / 'reports' / ('%s-latest.json' % host)
    assert os.path.islink(str(link)), 'no latest link'
    return os.readlink(str(link)), json.loads(link.read_text())


def test_migrate_rerun_and_verify_each_keep_their_own_report(redis70, valkey80, tmp_path):
    loaded = load(redis70, [0, 2])
    client = redis70.admin(2)
    pipe = client.pipeline(transaction=False)
    for i in range(1500):
        pipe.set(b'bulk:%d' % i, b'x')
    pipe.execute()
    loaded[2] += 1500
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolation='pause', kv_strategy='offline')
    first = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert first.returncode == 0, first.stdout[-3000:]
    [first_json] = reports(tmp_path, 'pair', 'migrate')
    first_md = first_json[:-len('json')] + 'md'
    assert re.match(r'^pair-\d{8}T\d{6}Z-migrate\.json$', os.path.basename(first_json)), first_json
    target, report = latest(tmp_path, 'pair')
    assert target == os.path.basename(first_json)
    assert os.readlink(str(tmp_path / 'reports' / 'pair-latest.md')) == os.path.basename(first_md)
    assert not os.path.exists(str(tmp_path / 'reports' / 'pair.json')), 'the old name is still written'

    # what the change ticket needs
    assert report['playbook'] == 'migrate' and report['status'] == 'ok' and report['rerun'] is False
    assert ISO.match(report['started_at']) and ISO.match(report['ended_at']), report
    assert 0 < report['duration_s'] < 600
    steps = [s['step'] for s in report['steps']]
    assert steps == ['preflight', 'isolate', 'backup', 'migrate', 'verify', 'cutover', 'release'], steps
    assert all(s['seconds'] >= 0 and ISO.match(s['started_at']) for s in report['steps'])
    # the steps follow each other and fill the run: what is left is the time before the first step and the writing
    # of the report itself (a few tasks: seconds on a loaded machine, so bounded relative to the run, not absolutely)
    starts = [s['started_at'] for s in report['steps']]
    assert starts == sorted(starts), report['steps']
    covered = sum(s['seconds'] for s in report['steps'])
    assert covered <= report['duration_s'] + 0.1 * len(steps), (covered, report['duration_s'], report['steps'])
    assert report['duration_s'] - covered < max(3.0, 0.1 * report['duration_s']), (covered, report['duration_s'])
    with open(os.path.join(ROOT, 'galaxy.yml')) as fh:
        version = re.search(r'^version: (\S+)', fh.read(), re.M).group(1)
    assert report['versions']['collection'] == 'kvtools.migration ' + version
    assert re.match(r'^2\.\d+\.\d+', report['versions']['ansible_core']), report['versions']
    assert report['versions']['source'].startswith('redis 7.0'), report['versions']
    assert report['versions']['target'].startswith('valkey 8.0'), report['versions']
    assert report['run_by'] == '%s@%s' % (getpass.getuser(), os.uname()[1])
    backup = str(tmp_path / 'work') + '/kv-backup-pair.rdb'  # as given: kv_work_dir + the role's file name
    with open(backup, 'rb') as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    assert report['backup']['dest'] == backup and report['backup']['taken_by'] == 'this run'
    assert report['backup']['size'] == os.path.getsize(backup) and report['backup']['sha256'] == digest
    iso = report['isolation']
    assert iso['mode'] == 'pause' and ISO.match(iso['writes_stopped_at']) and ISO.match(iso['writes_resumed_at'])
    assert iso['seconds'] == report['writes_paused_s'] and iso['seconds'] > 0 and iso['still_isolated'] is False
    assert iso['node'] == '127.0.0.1:%d' % redis70.port, iso
    assert report['verification']['scope'] == 'full', report['verification']
    assert report['verification']['scope_detail'].startswith('full: every key of every db'), report['verification']
    markdown = open(first_md).read()
    assert '| 2 | 2 | {:,} | {:,} |'.format(loaded[2], loaded[2]) in markdown, markdown
    assert '{:,}'.format(loaded[2]) != str(loaded[2])
    assert 'sha256: ' + digest in markdown and 'size: {:,} bytes'.format(os.path.getsize(backup)) in markdown
    assert 'run by %s' % report['run_by'] in markdown
    assert 'writes stopped at %s, resumed at %s' % (iso['writes_stopped_at'], iso['writes_resumed_at']) in markdown
    first_content = (open(first_json).read(), open(first_md).read())

    time.sleep(1.1)  # the file names carry the start second
    second = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert second.returncode == 0, second.stdout[-3000:]
    assert recap(second.stdout)['pair']['changed'] == 0
    both = reports(tmp_path, 'pair', 'migrate')
    assert len(both) == 2 and both[0] == first_json, both
    assert (open(first_json).read(), open(first_md).read()) == first_content, 'the rerun changed the first report'
    target, rerun = latest(tmp_path, 'pair')
    assert target == os.path.basename(both[1])
    assert rerun['rerun'] is True and rerun['rerun_of'] == os.path.basename(first_md), rerun['rerun_of']
    assert 'Report of that copy: %s' % os.path.basename(first_md) in open(both[1][:-4] + 'md').read()
    assert rerun['backup']['taken_by'] == 'an earlier run' and rerun['backup']['sha256'] == digest

    time.sleep(1.1)
    verify = ansible_playbook(os.path.join(ROOT, 'playbooks', 'verify.yml'), inventory=inventory)
    assert verify.returncode == 0, verify.stdout[-3000:]
    [verify_json] = reports(tmp_path, 'pair', 'verify')
    target, checked = latest(tmp_path, 'pair')
    assert target == os.path.basename(verify_json) and checked['playbook'] == 'verify'
    assert checked['verification']['consistent'] is True and checked['versions']['source'].startswith('redis 7.0')
    assert [s['step'] for s in checked['steps']] == ['verify']
    assert open(verify_json[:-4] + 'md').read().startswith('# Verification report: pair')
    assert len(reports(tmp_path, 'pair', 'migrate')) == 2 and open(first_json).read() == first_content[0]
    for out in (first.stdout, second.stdout, verify.stdout):
        no_secret(out)


def free_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_a_failed_preflight_reports_source_and_target_as_given(valkey80, tmp_path):
    port = free_port()
    source = dict(host='127.0.0.1', port=port, password='Not-Used-1')
    inventory = write_inventory(tmp_path, {'pair': (source, valkey80.endpoint())})
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert result.returncode != 0
    [path] = reports(tmp_path, 'pair', 'migrate')
    report = json.loads(open(path).read())
    assert report['status'] == 'failed' and report['error']
    assert report['source'] == '127.0.0.1:%d' % port, report['source']
    assert report['target'] == '%s:%d' % (valkey80.endpoint()['host'], valkey80.endpoint()['port']), report['target']
    assert [s['step'] for s in report['steps']] == ['preflight']
    assert 'Report: %s' % path[:-4] + 'md' in result.stdout
    assert 'Not-Used-1' not in result.stdout and 'Not-Used-1' not in open(path).read()
