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


def run_modules(calls, workdir=None, diff=False):
    """Run module tasks one after the other in one ansible-playbook run; returns their registered results.

    ``calls``: ``[(module, args)]`` or ``[(module, args, check)]``.  For calls with nothing to look at in
    between (read-only ones, or a sequence whose results are checked afterwards): one Ansible start-up
    instead of one per call.  Every result also carries ``_output``, all that ansible-playbook printed.
    The registered results are handed over with ``set_stats`` and written to a file by the callback
    tests/support/callback_plugins/kv_result_file.py (no module run of its own).
    """
    workdir = workdir or tempfile.mkdtemp(prefix='kv-play-')
    out = os.path.join(workdir, 'result.json')
    tasks = []
    for index, call in enumerate(calls):
        module, args = call[0], call[1]
        fqcn = module if '.' in module else 'kvtools.migration.' + module
        task = {'name': 'module under test %d' % index, fqcn: args, 'register': 'kv_result%d' % index,
                'ignore_errors': True}
        if len(call) > 2 and call[2]:
            task['check_mode'] = True
        if diff:
            task['diff'] = True
        tasks.append(task)
    names = ', '.join('kv_result%d' % i for i in range(len(calls)))
    tasks.append({'name': 'hand the results over', 'ansible.builtin.set_stats': {
        'data': {'kv_result_json': '{{ [%s] | to_json }}' % names}, 'per_host': False}, 'no_log': True})
    path = os.path.join(workdir, 'play.yml')
    with open(path, 'w') as fh:
        json.dump([{'hosts': 'localhost', 'gather_facts': False, 'tasks': tasks}], fh)
    env = {'ANSIBLE_CALLBACK_PLUGINS': CALLBACKS, 'ANSIBLE_CALLBACKS_ENABLED': 'kv_result_file',
           'KV_RESULT_FILE': out}
    proc = ansible_playbook(path, args=['-v'] if diff else (), env=env)
    if not os.path.exists(out):
        raise AssertionError('ansible-playbook did not run the modules:\n' + proc.stdout)
    with open(out) as fh:
        results = json.load(fh)
    for result in results:
        result['_output'] = proc.stdout
    return results


def run_module(module, args, check=False, diff=False, workdir=None):
    """Run one module task through ansible-playbook and return its registered result (see run_modules)."""
    return run_modules([(module, args, check)], workdir=workdir, diff=diff)[0]
