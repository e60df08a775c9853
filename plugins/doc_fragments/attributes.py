# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The action groups of meta/runtime.yml, named in ansible-doc: module_defaults for group/kvtools.migration.pair
    # sets source and target once, group/kvtools.migration.server sets server once.

    # Modules with source and target: extends_documentation_fragment: kvtools.migration.attributes.PAIR
    PAIR = r'''
attributes:
  action_group:
    description: Use C(group/kvtools.migration.pair) in C(module_defaults) to set O(source) and O(target) once for
      every module with both endpoints (C(group/kvtools.migration.kv) holds every module of the collection).
    support: full
    membership:
      - kvtools.migration.kv
      - kvtools.migration.pair
'''

    # Modules with one server: extends_documentation_fragment: kvtools.migration.attributes.SERVER
    SERVER = r'''
attributes:
  action_group:
    description: Use C(group/kvtools.migration.server) in C(module_defaults) to set O(server) once for every module
      with one endpoint (C(group/kvtools.migration.kv) holds every module of the collection).
    support: full
    membership:
      - kvtools.migration.kv
      - kvtools.migration.server
'''

    # Modules that only read: extends_documentation_fragment: kvtools.migration.attributes.CHECK_MODE_READ_ONLY
    CHECK_MODE_READ_ONLY = r'''
attributes:
  check_mode:
    support: full
    description: The module only reads; check mode runs it as usual.
'''
