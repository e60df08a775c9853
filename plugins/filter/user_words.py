# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: user_words
short_description: Say a module's message in the words of the playbook's user
version_added: 0.1.0
description:
  - Replaces the module options and role variables a message names with the C(kv_*) variables the user sets in the
    inventory - C(allow_nonempty_target) becomes C(kv_allow_nonempty_target), C(preflight_isolation) becomes
    C(kv_isolation), and C(isolation=pause) names C(kv_isolation) with its value.
options:
  _input:
    description: The message.
    type: str
    required: true
author: kvtools.migration contributors
'''

EXAMPLES = r'''
- name: Fail with the module's message in the user's words
  ansible.builtin.fail:
    msg: "{{ ansible_failed_result.msg | kvtools.migration.user_words }}"
'''

RETURN = r'''
_value:
  description: The message.
  type: str
'''

import re

from ansible_collections.kvtools.migration.plugins.plugin_utils.variables import role_to_user

# module options that are kv_* variables in the playbooks; generic words only in option form (name= / name:)
OPTIONS = ('allow_nonempty_target', 'on_conflict', 'db_map', 'isolate_users')
OPTION_FORMS = ('isolation', 'method', 'dbs', 'match', 'strategy', 'verify_scope')
NOT_A_NAME = r'(?<![\w.])'


def user_words(message):
    if not isinstance(message, str):
        return message
    out = message
    for role_name, user_name in sorted(role_to_user().items(), key=lambda item: -len(item[0])):
        out = re.sub(NOT_A_NAME + re.escape(role_name) + r'\b', user_name, out)
    for name in OPTIONS:
        out = re.sub(NOT_A_NAME + r'(?<!kv_)' + name + r'\b', 'kv_' + name, out)
    for name in OPTION_FORMS:
        out = re.sub(NOT_A_NAME + r'(?<!kv_)' + name + r'(=|: )', r'kv_%s: ' % name, out)
    out = out.replace('another isolation (', 'another kv_isolation (')
    return out


class FilterModule(object):
    def filters(self):
        return {'user_words': user_words}
