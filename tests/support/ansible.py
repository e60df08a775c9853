"""Run kvtools.migration modules and playbooks through ansible-playbook, as users do."""

import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, '.build', 'collections')


def ensure_collection_path():
    """Make ``ansible_collections.kvtools.migration`` point at this working tree."""
    ns = os.path.join(COLLECTIONS, 'ansible_collections', 'kvtools')
    os.makedirs(ns, exist_ok=True)
    link = os.path.join(ns, 'migration')
    if os.path.islink(link) and os.path.realpath(link) == os.path.realpath(ROOT):
        return COLLECTIONS
    tmp = link + '.%d.tmp' % os.getpid()
    os.symlink(ROOT, tmp)
    os.replace(tmp, link)
    return COLLECTIONS


def ansible_env(extra=None):
    env = dict(os.environ)
    venv_bin = os.path.dirname(sys.executable)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=ensure_collection_path(),
        ANSIBLE_ROLES_PATH=os.path.join(ROOT, 'roles'),
        ANSIBLE_NOCOLOR='1',
        ANSIBLE_FORCE_COLOR='0',
        ANSIBLE_RETRY_FILES_ENABLED='0',
        ANSIBLE_HOST_KEY_CHECKING='0',
        ANSIBLE_LOCALHOST_WARNING='0',
        ANSIBLE_INVENTORY_UNPARSED_WARNING='0',
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        PATH=venv_bin + os.pathsep + env.get('PATH', ''),
    )
    env.update(extra or {})
    return env


def ansible_playbook(playbook, extra_vars=None, check=False, diff=False, inventory=None, env=None, timeout=900,
                     args=()):
    """Run a playbook file; returns the CompletedProcess (stdout+stderr as text)."""
    cmd = [os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), playbook]
    cmd += ['-i', inventory or 'localhost,', '-c', 'local']
    if extra_vars:
        fd, path = tempfile.mkstemp(suffix='.json', prefix='kv-vars-')
        with os.fdopen(fd, 'w') as fh:
            json.dump(extra_vars, fh)
        cmd += ['-e', '@' + path]
    if check:
        cmd.append('--check')
    if diff:
        cmd.append('--diff')
    cmd += list(args)
    try:
        return subprocess.run(cmd, env=ansible_env(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=timeout, check=False)
    finally:
        if extra_vars:
            os.unlink(path)


CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'callback_plugins')


def run_module(module, args, check=False, diff=False, workdir=None):
    """Run one module task through ansible-playbook and return its registered result.

    The result also carries ``_output``: everything ansible-playbook printed (for leak checks).
    The registered result is handed over with ``set_stats`` and written to a file by the callback
    tests/support/callback_plugins/kv_result_file.py (no module run of its own).
    """
    workdir = workdir or tempfile.mkdtemp(prefix='kv-play-')
    out = os.path.join(workdir, 'result.json')
    fqcn = module if '.' in module else 'kvtools.migration.' + module
    task = {'name': 'module under test', fqcn: args, 'register': 'kv_result', 'ignore_errors': True}
    if check:
        task['check_mode'] = True
    if diff:
        task['diff'] = True
    play = [{'hosts': 'localhost', 'gather_facts': False, 'tasks': [
        task,
        {'name': 'hand the result over', 'ansible.builtin.set_stats': {
            'data': {'kv_result_json': '{{ kv_result | to_json }}'}, 'per_host': False}, 'no_log': True},
    ]}]
    path = os.path.join(workdir, 'play.yml')
    with open(path, 'w') as fh:
        json.dump(play, fh)
    env = {'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS, 'ANSIBLE_CALLBACKS_ENABLED': 'kv_result_file',
           'KV_RESULT_FILE': out}
    proc = ansible_playbook(path, args=['-v'] if diff else (), env=env)
    if not os.path.exists(out):
        raise AssertionError('ansible-playbook did not run the module:\n' + proc.stdout)
    with open(out) as fh:
        result = json.load(fh)
    result['_output'] = proc.stdout
    return result
