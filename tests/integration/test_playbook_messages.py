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
    # how many of the sampled target keys differ, not just the size of the db
    assert '(db 0: 1 of 1 sampled key(s) differ, 1 key(s) in the db; for example ' in line.group(0), line.group(0)
    assert ' allow_nonempty_target' not in out.replace('kv_allow_nonempty_target', '')
    # printed by the failing task (Ansible's error line and its result), not again by the closing message,
    # and the result is not dumped: no plan, no facts of the servers
    assert out.count('the target holds keys that are not') <= 2, out[-5000:]
    assert '"plan"' not in out and '"source":' not in out and '"dbs"' not in out
    assert 'The migration of pair stopped at Preflight | Stop on the problems found (the error is printed above). ' \
        'The source was not changed. Report: ' in out, out[-2000:]
    assert valkey80.admin().dbsize() == 1
    no_secret(out)


def tasks_printing(output, text):
    """The banners of the tasks whose output holds ``text``."""
    return [section.split(']', 1)[0] for section in output.split('TASK [')[1:] if text in section]


def test_a_handled_fallback_prints_no_error(redis70, valkey80, tmp_path):
    """MIGRATE cannot reach the target (migrate_port is closed): the role falls back to DUMP/RESTORE as documented.
    That is no failure: no [ERROR], no fatal:, nothing red; the reason is said once, the copy is complete."""
    from tests.support import compare
    from tests.support.servers import free_port
    load(redis70, [0])
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(),
                                                    valkey80.endpoint(migrate_port=free_port()))},
                                kv_strategy='offline', kv_method='migrate')
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    out = result.stdout
    assert result.returncode == 0, out[-4000:]
    assert 'fatal:' not in out and '[ERROR]' not in out and '...ignoring' not in out, out[-6000:]
    assert re.search(r'^pair\s+:.* failed=0 .* rescued=0 ', out, re.M), out[-1000:]
    assert tasks_printing(out, 'could not reach the target') == ['kvtools.migration.migrate : Migrate | Show why '
                                                                 'MIGRATE was given up'], out[-6000:]
    compare.assert_same(redis70, valkey80, [(0, 0)])
    no_secret(out)


def test_a_wrong_password_is_printed_once_without_the_result(redis70, valkey80, tmp_path):
    """One clean message per failure: the failing task prints the module's message (Ansible shows it as its error
    line and as the result's msg), no other task repeats it, no result keys are dumped, no secret."""
    load(redis70, [0])
    target = valkey80.endpoint(password='Wrong-Passw0rd-42')
    inventory = write_inventory(tmp_path, {'pair': (redis70.endpoint(), target)}, kv_strategy='offline')
    result = ansible_playbook(PLAYBOOK, inventory=inventory)
    out = result.stdout
    assert result.returncode != 0
    assert tasks_printing(out, 'authentication failed') == ['kvtools.migration.preflight : Preflight | Reach and read '
                                                            'both servers'], out[-5000:]
    fatal = [line for line in out.splitlines() if line.startswith('fatal: [pair]')]
    assert len(fatal) == 2, fatal  # the failed step, then the closing "stopped at ..." line
    assert fatal[0].endswith('"msg": "connecting to target: authentication failed for user \'migrator\': the password '
                             'is wrong, or the user does not exist or is disabled. Check username and password (the '
                             'server does not say which) (127.0.0.1:%d)"}' % valkey80.port), fatal[0]
    assert '"error_details"' not in out and '"endpoint"' not in out and 'argument_spec' not in out
    assert 'stopped at Preflight | Reach and read both servers (the error is printed above)' in out
    assert 'Wrong-Passw0rd-42' not in out
    assert valkey80.admin().info('keyspace') == {}
    no_secret(out)
