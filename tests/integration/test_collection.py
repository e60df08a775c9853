# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection as users get it: built, installed, documented, and its metadata complete."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import json
import os
import re
import subprocess
import sys

import yaml

from tests.support import ansible as kv_ansible
from tests.support.ansible import ansible_playbook

ROOT = kv_ansible.ROOT
BIN = os.path.dirname(sys.executable)


def run(cmd, env=None, cwd=None):
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=300, check=False)
    assert proc.returncode == 0, '%s failed (%d):\n%s' % (' '.join(cmd), proc.returncode, proc.stdout)
    return proc.stdout


def read_yaml(*path):
    with open(os.path.join(ROOT, *path)) as fh:
        return yaml.safe_load(fh)


def module_names():
    return sorted(os.path.splitext(os.path.basename(p))[0]
                  for p in glob.glob(os.path.join(ROOT, 'plugins', 'modules', '*.py'))
                  if not os.path.basename(p).startswith('__'))


def test_build_install_and_document(tmp_path):
    """ansible-galaxy builds a tarball, installs it, and ansible-doc renders kv_info from the install."""
    dist = str(tmp_path / 'dist')
    collections = str(tmp_path / 'collections')
    env = kv_ansible.ansible_env({'ANSIBLE_COLLECTIONS_PATH': collections})

    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', '--output-path', dist, ROOT], env=env)
    galaxy = read_yaml('galaxy.yml')
    tarball = os.path.join(dist, '%s-%s-%s.tar.gz' % (galaxy['namespace'], galaxy['name'], galaxy['version']))
    assert os.path.isfile(tarball)

    run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', '-p', collections, tarball], env=env)
    installed = os.path.join(collections, 'ansible_collections', 'kvtools', 'migration')
    with open(os.path.join(installed, 'MANIFEST.json')) as fh:
        manifest = json.load(fh)
    assert manifest['collection_info']['version'] == galaxy['version']
    for name in module_names():
        assert os.path.isfile(os.path.join(installed, 'plugins', 'modules', name + '.py'))
    for private in ('.venv', '.servers', '.build', '.git'):
        assert not os.path.exists(os.path.join(installed, private)), '%s was packaged' % private

    listed = run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'list', '-p', collections, '--format', 'json'],
                 env=env)
    assert 'kvtools.migration' in listed

    text = run([os.path.join(BIN, 'ansible-doc'), 'kvtools.migration.kv_info'], env=env)
    text = re.sub(r'\x1b\[[0-9;]*m', '', text)
    assert 'MODULE kvtools.migration.kv_info' in text
    assert re.search(r'^ *[=-]? *server +The server to connect to', text, re.M), text
    assert re.search(r'^ *[=-]? *url +A connection URL', text, re.M), text
    assert installed in text, 'ansible-doc did not read the installed copy'

    docs = json.loads(run([os.path.join(BIN, 'ansible-doc'), '--json', 'kvtools.migration.kv_info'], env=env))
    options = docs['kvtools.migration.kv_info']['doc']['options']
    assert options['server']['required'] is True
    assert 'url' in options['server']['suboptions']
    assert options['server']['suboptions']['port']['type'] == 'int'


def test_action_group_lists_every_module():
    """meta/runtime.yml's action group kv holds every module, so module_defaults reaches all of them."""
    runtime = read_yaml('meta', 'runtime.yml')
    assert runtime['requires_ansible'].startswith('>=') and runtime['requires_ansible'].count('.') == 2
    group = runtime['action_groups']['kv']
    assert module_names(), 'no modules found'
    missing = sorted(set(module_names()) - set(group))
    assert not missing, 'add these modules to action_groups.kv in meta/runtime.yml: %s' % ', '.join(missing)
    unknown = sorted(set(group) - set(module_names()))
    assert not unknown, 'action_groups.kv lists modules that do not exist: %s' % ', '.join(unknown)


def test_endpoint_groups_match_the_modules_options():
    """group/kvtools.migration.pair holds exactly the modules with source and target, group/...server exactly
    those with server, so module_defaults of either group never meets a module that rejects it."""
    import ast
    runtime = read_yaml('meta', 'runtime.yml')
    shapes = {}
    for name in module_names():
        with open(os.path.join(ROOT, 'plugins', 'modules', name + '.py')) as fh:
            text = fh.read()
        match = re.search(r"endpoints=(\([^)]*\))", text)
        shapes[name] = tuple(ast.literal_eval(match.group(1))) if match else ()
        if not match and 'KVModule(' in text:
            shapes[name] = ('server',)
    assert sorted(runtime['action_groups']['pair']) == sorted(n for n, s in shapes.items() if s == ('source', 'target'))
    assert sorted(runtime['action_groups']['server']) == sorted(n for n, s in shapes.items() if s == ('server',))


def test_module_defaults_through_the_endpoint_groups(redis70, valkey80, tmp_path):
    """One play sets source/target for the pair group and server for the server group; both kinds run."""
    playbook = tmp_path / 'play.yml'
    playbook.write_text(yaml.safe_dump([{
        'hosts': 'localhost', 'gather_facts': False,
        'module_defaults': {'group/kvtools.migration.pair': {'source': redis70.endpoint(),
                                                             'target': valkey80.endpoint()},
                            'group/kvtools.migration.server': {'server': redis70.endpoint()}},
        'tasks': [{'name': 'preflight', 'kvtools.migration.kv_preflight': {}},
                  {'name': 'info', 'kvtools.migration.kv_info': {'permissions': False}}],
    }]))
    result = ansible_playbook(str(playbook))
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'ok=2' in result.stdout


def test_endpoint_documentation_matches_the_spec():
    """The endpoint sub-options are documented exactly as plugins/module_utils/_connection.py declares them,
    and the server / source / target copies in the doc fragment are the same."""
    from ansible_collections.kvtools.migration.plugins.doc_fragments.endpoint import ModuleDocFragment
    from ansible_collections.kvtools.migration.plugins.module_utils._connection import ENDPOINT_OPTIONS

    single = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)['options']
    double = yaml.safe_load(ModuleDocFragment.SOURCE_TARGET)['options']
    server = single['server']['suboptions']
    assert double['source']['suboptions'] == server
    assert double['target']['suboptions'] == server

    assert sorted(server) == sorted(ENDPOINT_OPTIONS)
    for name, spec in ENDPOINT_OPTIONS.items():
        doc = server[name]
        assert doc['type'] == spec['type'], name
        assert doc.get('default') == spec.get('default'), name
        assert doc.get('no_log', False) is False  # no_log lives in the spec, never in the docs
        assert doc['description'], name


def test_changelog_fragments_are_valid():
    """antsibull-changelog accepts the changelog configuration and every fragment."""
    run([os.path.join(BIN, 'antsibull-changelog'), 'lint'], cwd=ROOT)


def test_reference_docs_are_current():
    """docs/reference/ is generated from the modules' documentation and the roles' argument specs."""
    from tests.support import gen_docs
    assert gen_docs.main(['--check']) == 0, 'run `make docs` and commit docs/reference/'


def test_readme_module_example_runs_as_pasted(redis70, valkey80_tls, tmp_path):
    """The README's module example is a whole playbook: pasted as it is, with only its two endpoints and the
    vault passwords given on the command line (extra vars win over play vars), it copies and verifies."""
    with open(os.path.join(ROOT, 'README.md')) as fh:
        readme = fh.read()
    section = readme[readme.index('**The modules** directly'):]
    block = section[section.index('```yaml') + len('```yaml'):]
    block = block[:block.index('```')]
    play = yaml.safe_load(block)
    assert play[0]['vars']['old']['password'] == '{{ vault_old_password }}'
    playbook = tmp_path / 'example.yml'
    playbook.write_text(block)
    redis70.admin(1).set(b'example', b'1')
    redis70.admin(1).set(b'with space', b'2', px=600000)
    result = ansible_playbook(str(playbook), extra_vars=dict(
        old=redis70.endpoint(), new=valkey80_tls.endpoint(),
        vault_old_password='unused', vault_new_password='unused'))
    assert result.returncode == 0, result.stdout[-3000:]
    assert 'ok=2' in result.stdout and 'failed=0' in result.stdout
    assert valkey80_tls.admin(4).get(b'example') == b'1' and valkey80_tls.admin(4).pttl(b'with space') > 0
