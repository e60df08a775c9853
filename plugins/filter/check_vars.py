# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: check_vars
short_description: Find misspelled and invalid variables of kvtools.migration
version_added: 0.1.0
description:
  - Takes the variables of a host (the playbooks pass C(hostvars[inventory_hostname]) names and the values of the
    C(kv_*) ones) and returns C(warnings) - a C(kv_*) variable or a role option (C(migrate_wokers)) the collection does
    not know, with the closest known name - and C(errors) - a C(kv_*) variable whose value is not one of the values its
    role option allows, naming the variable the user set, the value and the allowed values.
  - The known names are read from the collection's roles (defaults, tasks, argument specs) and playbooks.
options:
  _input:
    description: The names of the host's variables.
    type: list
    elements: str
    required: true
  values:
    description: The values of the C(kv_*) variables, by name.
    type: dict
    default: {}
author: kvtools.migration contributors
'''

EXAMPLES = r'''
- name: Check the variables
  ansible.builtin.set_fact:
    kv_vars_check: >-
      {{ hostvars[inventory_hostname].keys() | list | kvtools.migration.check_vars(values=dict(kv_names | zip(kv_values))) }}
'''

RETURN = r'''
_value:
  description: C(warnings) and C(errors), lists of sentences, one problem each.
  type: dict
'''

import difflib

from ansible_collections.kvtools.migration.plugins.plugin_utils.variables import ROLE_PREFIXES, choices, known


def check_vars(names, values=None):
    values = values or {}
    names_known = known()
    kv_known = sorted(n for n in names_known if n.startswith('kv_'))
    role_known = sorted(n for n in names_known if not n.startswith('kv_'))
    warnings = []
    for name in sorted(set(str(n) for n in names)):
        if name in names_known:
            continue
        if name.startswith('kv_'):
            close = difflib.get_close_matches(name, kv_known, n=1, cutoff=0.6)
            warnings.append('%s is not a variable of kvtools.migration and is ignored%s'
                            % (name, ': did you mean %s?' % close[0] if close else ''))
        elif name.split('_', 1)[0] in ROLE_PREFIXES:
            # a variable of one's own may share a role's prefix: warn only when it is close to a role option
            close = difflib.get_close_matches(name, role_known, n=1, cutoff=0.8)
            if close:
                warnings.append('%s is not a variable of kvtools.migration and is ignored: did you mean %s?'
                                % (name, close[0]))
    errors = []
    for name, (_option, allowed) in sorted(choices().items()):
        if name in values and values[name] is not None and values[name] not in allowed:
            errors.append('%s is %s; allowed: %s' % (name, values[name], ', '.join(str(a) for a in allowed)))
    return dict(warnings=warnings, errors=errors)


class FilterModule(object):
    def filters(self):
        return {'check_vars': check_vars}
