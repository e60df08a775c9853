"""The options classes: their SPEC (the modules' argument specs) agrees with their constructors' defaults."""

import inspect

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions
from ansible_collections.kvtools.migration.plugins.module_utils._migrate import MigrateOptions
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import VerifyOptions


def _defaults(cls):
    out = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        for name, param in inspect.signature(init).parameters.items():
            if param.default is not inspect.Parameter.empty:
                out[name] = param.default
    return out


@pytest.mark.parametrize('cls', [CopyOptions, VerifyOptions])
def test_spec_defaults_are_the_constructor_defaults(cls):
    defaults = _defaults(cls)
    for name, spec in cls.SPEC.items():
        assert spec.get('default') == defaults[name], name


def test_migrate_spec_defaults_are_the_options_defaults():
    options = MigrateOptions.from_params({})
    for name, spec in MigrateOptions.SPEC.items():
        if 'default' in spec:
            assert getattr(options, name) == spec['default'], name


def test_from_params_takes_the_spec_names_only():
    options = CopyOptions.from_params(dict(batch_size=7, on_conflict='skip', backup_passphrase='x'), check_mode=True)
    assert options.batch_size == 7 and options.on_conflict == 'skip' and options.check_mode is True
