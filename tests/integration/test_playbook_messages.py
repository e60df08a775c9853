"""Messages in the user's words: the playbooks name the kv_* variables the user set, one problem per line, each
failure once and without the whole module result; a misspelled variable gets a warning with the closest known
name; --check does not call the unwritten target inconsistent.  Real servers, ansible-playbook."""

import re

from tests.integration.test_playbook_migrate import PLAYBOOK, load, no_secret, write_inventory
from tests.support.ansible import ansible_playbook


def test_misspelled_variables_get_a_warning_with_the_closest_name(redis70, valkey80, tmp_path):
    load(redis70, [0])
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolaton='pause', migrate_wokers=2, kv_strategy='offline')
    result = ansible_playbook(PLAYBOOK, inventory=inventory, check=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'kv_isolaton is not a variable of kvtools.migration and is ignored: did you mean kv_isolation?' \
        in result.stdout, result.stdout[-3000:]
    assert 'migrate_wokers is not a variable of kvtools.migration and is ignored: did you mean migrate_workers?' \
        in result.stdout
    # the check mode's verification does not call the target that the copy has not written yet inconsistent
    assert 'Check mode: the target has not been written yet' in result.stdout, result.stdout[-3000:]
    assert 'NOT consistent' not in result.stdout and 'copy the missing keys' not in result.stdout
    assert valkey80.admin().info('keyspace') == {}
    no_secret(result.stdout)


def test_a_wrong_value_names_the_variable_the_user_set(redis70, valkey80, tmp_path):
    load(redis70, [0])
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolation='paus', kv_on_conflict='overwrite')
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert result.returncode != 0
    out = result.stdout
    assert re.search(r'The variables of pair have 2 problem\(s\); nothing was changed:$', out, re.M), out[-3000:]
    assert re.search(r'^- kv_isolation is paus; allowed: none, pause, acl, cf$', out, re.M), out[-3000:]
    assert re.search(r'^- kv_on_conflict is overwrite; allowed: fail, skip, replace$', out, re.M), out[-3000:]
    assert 'preflight_isolation' not in out and 'argument_spec' not in out and 'cutover_mode' not in out
    assert valkey80.admin().info('keyspace') == {} and not (tmp_path / 'reports').exists()


def test_preflight_problems_one_per_line_in_the_inventorys_words_printed_once(redis70, valkey80, tmp_path):
    load(redis70, [0])
    valkey80.admin().set(b'foreign', b'1')
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), valkey80.endpoint())},
                                kv_isolation='pause')
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    assert result.returncode != 0
    out = result.stdout
    assert re.search(r'The preflight found 1 problem\(s\); nothing was changed:$', out, re.M), out[-3000:]
    line = re.search(r'^- the target holds keys .*$', out, re.M)
    assert line, out[-3000:]
    assert 'set kv_allow_nonempty_target' in line.group(0) and 'unless kv_on_conflict' in line.group(0), line.group(0)
    assert ' allow_nonempty_target' not in out.replace('kv_allow_nonempty_target', '')
    # printed by the failing task (Ansible's error line and its result), not again by the closing message,
    # and the result is not dumped: no plan, no facts of the servers
    assert out.count('the target holds keys that are not') <= 2, out[-5000:]
    assert '"plan"' not in out and '"source":' not in out and '"dbs"' not in out
    assert 'The migration of pair stopped at Preflight | Stop on the problems found (the error is printed above). ' \
        'The source was not changed. Report: ' in out, out[-2000:]
    assert valkey80.admin().dbsize() == 1
    no_secret(out)
