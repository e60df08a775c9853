"""playbooks/migrate.yml with merged dbs (kv_allow_db_merge) and kv_on_conflict=skip, end to end against real servers.

A merge is refused in one line without the switch and nothing is written; with it the play copies, verifies green and
the reports name the keys on_conflict decided.  A pre-existing differing key under skip ends green, named in the
report as skipped.  Key names carry a newline, a NUL and non-UTF-8 bytes.
"""

import json
import re

import pytest

from tests.integration.test_playbook_migrate import PLAYBOOK, no_secret, recap, write_inventory
from tests.support.ansible import ansible_playbook

SHARED = [b'both\nnew line', b'both\x00nul', b'both\xff\xfe']
OWN = {1: [b'one\xff', b'one:a'], 7: [b'seven\x00', b'seven:a']}


def load_merge(server):
    for db in (1, 7):
        client = server.admin(db)
        for key in SHARED:
            client.set(key, b'from %d' % db)
        for key in OWN[db]:
            client.set(key, key)


def escaped(key):
    return repr(key)[2:-1]


def report_of(tmp_path, host):
    data = json.loads((tmp_path / 'reports' / ('%s-latest.json' % host)).read_text())
    markdown = (tmp_path / 'reports' / ('%s-latest.md' % host)).read_text()
    return data, markdown


def test_merge_refused_without_kv_allow_db_merge(redis72, valkey80, tmp_path):
    load_merge(redis72)
    inventory = write_inventory(tmp_path, {'merge': (redis72.endpoint(), valkey80.endpoint())},
                                kv_db_map={1: 3, 7: 3}, kv_on_conflict='replace')
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    out = result.stdout
    assert result.returncode != 0
    assert re.search(r'db_map sends source dbs 1 and 7 into target db 3: set allow_db_merge: true \(playbook: '
                     r'kv_allow_db_merge\) to merge them; keys present in both are then handled by (kv_)?on_conflict',
                     out), out[-3000:]
    assert '[(' not in out and '(1, 3)' not in out
    assert valkey80.admin().info('keyspace') == {}
    no_secret(out)


@pytest.mark.parametrize('on_conflict,winner', [('skip', 1), ('replace', 7)])
def test_merge_with_kv_allow_db_merge_ends_green(redis72, valkey80, tmp_path, on_conflict, winner):
    load_merge(redis72)
    inventory = write_inventory(tmp_path, {'merge': (redis72.endpoint(), valkey80.endpoint())},
                                kv_db_map={1: 3, 7: 3}, kv_allow_db_merge=True, kv_on_conflict=on_conflict)
    if on_conflict == 'replace':  # --check: the plan, nothing written, and verify does not call the target inconsistent
        dry = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
        assert dry.returncode == 0, dry.stdout[-3000:]
        assert 'Check mode: the target has not been written yet' in dry.stdout
        assert 'NOT consistent' not in dry.stdout and 'copy the missing keys' not in dry.stdout
        assert valkey80.admin().info('keyspace') == {}
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    out = result.stdout
    assert result.returncode == 0, out[-4000:]
    assert recap(out)['merge']['failed'] == 0
    assert 'strategy: offline (live is not possible: ' in out  # auto chose offline, saying why
    if on_conflict == 'replace':
        assert 'a live copy cannot merge dbs' in out
    target = valkey80.admin(3)
    assert sorted(target.scan_iter(count=1000)) == sorted(SHARED + OWN[1] + OWN[7])
    assert [target.get(k) for k in SHARED] == [b'from %d' % winner] * 3
    assert all(target.get(k) == k for k in OWN[1] + OWN[7])
    assert valkey80.admin(1).dbsize() == 0 and valkey80.admin(7).dbsize() == 0

    data, markdown = report_of(tmp_path, 'merge')
    assert data['status'] == 'ok', data.get('error')
    verification = data['verification']
    assert verification['consistent'] is True
    chosen = verification['chosen']
    loser = 7 if on_conflict == 'skip' else 1
    assert sorted(d['key'] for d in chosen) == sorted(escaped(k) for k in SHARED)
    assert all(d['db'] == loser and d['target_db'] == 3 for d in chosen), chosen
    counter = 'skipped' if on_conflict == 'skip' else 'merged'
    assert verification['totals'][counter] == 3 and verification['totals']['extra'] == 0
    assert 'Differences the run chose' in markdown and escaped(SHARED[2]) in markdown
    no_secret(out)
    if on_conflict == 'skip':
        # a rerun: the preflight sees the merged target db as an earlier copy of its source dbs (no foreign keys),
        # the copy writes nothing, the verification is green again
        rerun = ansible_playbook(PLAYBOOK, inventory=inventory)
        assert rerun.returncode == 0, rerun.stdout[-4000:]
        data, dummy = report_of(tmp_path, 'merge')
        assert data['copy']['totals']['copied'] == 0 and data['verification']['consistent'] is True
        assert [target.get(k) for k in SHARED] == [b'from 1'] * 3


def test_on_conflict_skip_with_a_differing_target_key_ends_green(redis72, valkey80, tmp_path):
    source = redis72.admin(0)
    keys = [b'k\nnl', b'k\x00nul', b'k\xff\xfe', b'plain']
    for key in keys:
        source.set(key, b'source')
    target = valkey80.admin(0)
    target.set(keys[0], b'kept')
    target.set(keys[2], b'kept')
    inventory = write_inventory(tmp_path, {'skip': (redis72.endpoint(), valkey80.endpoint())},
                                kv_on_conflict='skip', kv_allow_nonempty_target=True)
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    out = result.stdout
    assert result.returncode == 0, out[-4000:]
    assert [target.get(k) for k in keys] == [b'kept', b'source', b'kept', b'source']
    data, markdown = report_of(tmp_path, 'skip')
    assert data['status'] == 'ok'
    verification = data['verification']
    assert verification['consistent'] is True and verification['totals']['skipped'] == 2
    assert sorted(d['key'] for d in verification['chosen']) == sorted(escaped(k) for k in (keys[0], keys[2]))
    assert all(d['detail'] == 'skipped by on_conflict=skip, target value kept' for d in verification['chosen'])
    assert '2 keys skipped by on_conflict=skip (target value kept)' in verification['summary']
    assert 'skipped by on_conflict=skip, target value kept' in markdown and escaped(keys[2]) in markdown

    # a difference the run did not choose still fails the play
    target.set(b'plain', b'changed behind the copy')
    target.set(b'extra', b'x')
    again = ansible_playbook(PLAYBOOK, inventory=inventory, args=['--tags', 'verify'])
    assert again.returncode != 0, again.stdout[-3000:]
    assert 'NOT consistent' in again.stdout
    no_secret(out)
