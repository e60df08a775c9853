# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The variables of the collection's roles and playbooks, read from the collection's own files.

``known()`` lists every ``kv_*`` variable the roles and playbooks read and every role option of the argument
specs; ``role_to_user()`` maps a role option to the ``kv_*`` variable its default comes from (``preflight_isolation``
-> ``kv_isolation``); ``choices()`` gives the allowed values of a ``kv_*`` variable from the option it feeds.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os
import re

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE_PREFIXES = ('preflight', 'isolate', 'backup', 'migrate', 'sync', 'verify', 'cutover', 'report')
KV_NAME = re.compile(r'(?<![\w.])kv_[a-z0-9_]*[a-z0-9]')
# a role default that is a user variable: "{{ kv_isolation | default('none') }}"
FROM_USER = re.compile(r'^\s*\{\{\s*(kv_[a-z0-9_]+)\s*(\||\}\})')

_cache = {}


def _files(*patterns):
    out = []
    for pattern in patterns:
        out.extend(sorted(glob.glob(os.path.join(ROOT, pattern))))
    return out


def _load():
    if _cache:
        return _cache
    kv_names = set()
    for path in _files('roles/*/defaults/*.yml', 'roles/*/tasks/*.yml', 'roles/*/templates/*', 'playbooks/*.yml',
                       'playbooks/tasks/*.yml'):
        with open(path) as fh:
            kv_names.update(KV_NAME.findall(fh.read()))
    options = {}
    for path in _files('roles/*/meta/argument_specs.yml'):
        with open(path) as fh:
            specs = (yaml.safe_load(fh) or {}).get('argument_specs') or {}
        for entry in specs.values():
            for name, spec in ((entry or {}).get('options') or {}).items():
                options.setdefault(name, spec or {})
    role_to_user = {}
    for path in _files('roles/*/defaults/main.yml'):
        with open(path) as fh:
            defaults = yaml.safe_load(fh) or {}
        for name, value in defaults.items():
            match = FROM_USER.match(value) if isinstance(value, str) else None
            if match:
                role_to_user[name] = match.group(1)
    _cache.update(kv_names=kv_names, options=options, role_to_user=role_to_user)
    return _cache


def known():
    data = _load()
    return data['kv_names'] | set(data['options'])


def role_to_user():
    return dict(_load()['role_to_user'])


def choices():
    """``{kv_name: (role option, [choices])}`` for the kv_* variables whose option has choices."""
    data = _load()
    out = {}
    for option, user in data['role_to_user'].items():
        allowed = data['options'].get(option, {}).get('choices')
        if allowed and user not in out:
            out[user] = (option, list(allowed))
    return out
