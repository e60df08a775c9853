"""The layout rules of plugins/module_utils/ (see docs/architecture.md), checked on the source text."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULE_UTILS = os.path.join(ROOT, 'plugins', 'module_utils')
PREFIX = 'ansible_collections.kvtools.migration.plugins.module_utils'
MAX_LINES = 600
# The engines that do a copy; the others may not import them (a helper they need belongs in a small module).
COPY_ENGINE = ('_copy', '_copy_progress', '_copy_worker', '_migrate', '_backup_source', '_rdb_file_source', '_live_source',
               '_restore_writer', '_cluster_source', '_cluster_target')


def _files():
    return sorted(name for name in os.listdir(MODULE_UTILS) if name.endswith('.py'))


def _imports(name):
    """``[(module, imported name)]`` of the collection's own module_utils imported by ``name``."""
    with open(os.path.join(MODULE_UTILS, name)) as fh:
        tree = ast.parse(fh.read(), name)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(PREFIX + '.'):
                for alias in node.names:
                    out.append((node.module[len(PREFIX) + 1:], alias.name))
            elif node.module == PREFIX:
                for alias in node.names:
                    out.append((alias.name, None))
    return out


@pytest.mark.parametrize('name', _files())
def test_no_private_name_is_imported_from_another_file(name):
    private = ['%s.%s' % (module, imported) for module, imported in _imports(name)
               if imported is not None and imported.startswith('_')]
    assert not private, '%s imports private names: %s' % (name, private)


@pytest.mark.parametrize('name', _files())
def test_files_stay_small(name):
    with open(os.path.join(MODULE_UTILS, name)) as fh:
        lines = sum(1 for dummy in fh)
    assert lines <= MAX_LINES, '%s has %d lines (at most %d)' % (name, lines, MAX_LINES)


@pytest.mark.parametrize('name', [n for n in _files() if n[:-3] not in COPY_ENGINE])
def test_no_other_engine_imports_the_copy_engine(name):
    used = sorted(set(module for module, dummy in _imports(name) if module in COPY_ENGINE))
    assert not used, '%s imports the copy engine (%s): move the helper it needs into a small module' % (name, used)


def test_the_checks_see_imports():
    """The walk finds the imports it checks (a guard against a test that cannot fail)."""
    assert ('_errors', 'KVError') in _imports('_copy.py')
    assert any(module == '_copy' for module, dummy in _imports('_migrate.py'))
