# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The options of a copy job that kv_dump_restore and kv_migrate share, documented once.  Their specs are
    # CopyOptions.SPEC / MigrateOptions.SPEC in plugins/module_utils/_copy.py and _migrate.py.  Options whose
    # default differs between the modules (batch_size) stay in the modules.

    # Which keys: extends_documentation_fragment: kvtools.migration.job.SELECTION
    SELECTION = r'''
options:
  dbs:
    description:
      - Source databases to copy. Default - every non-empty database of the source.
    type: list
    elements: int
  match:
    description:
      - Copy only keys whose name matches this glob (C(SCAN MATCH) syntax).
    type: str
'''

    # Where each db goes (also kv_preflight and kv_verify): extends_documentation_fragment: kvtools.migration.job.DB_MAP
    DB_MAP = r'''
options:
  db_map:
    description:
      - "Map of source database to target database, for example C({0: 0, 1: 4}). Unmapped databases keep their number."
    type: dict
'''

    # How the copy runs and what it leaves behind: extends_documentation_fragment: kvtools.migration.job.RUN
    RUN = r'''
options:
  on_conflict:
    description:
      - What to do with keys that already exist on the target with a different value or expiry.
      - V(fail) stops before anything is written (to any database) and lists the differing keys.
      - V(skip) leaves them as they are; V(replace) overwrites them (M(kvtools.migration.kv_migrate) sends
        C(MIGRATE ... REPLACE) for those keys only).
      - Keys identical on both sides are never a conflict.
    type: str
    choices: [fail, skip, replace]
    default: fail
  workers:
    description:
      - Batches copied in parallel, each worker with its own connections. Each worker also overlaps its
        reads from the source with its writes to the target (M(kvtools.migration.kv_migrate) - the source runs
        one C(MIGRATE) at a time; the workers overlap the scanning, the comparisons and the network).
      - 3 was the fastest on a 2-core machine running source, target and copier (see the benchmarks).
    type: int
    default: 3
  report:
    description:
      - Path of a JSON file to write the result to (also when the copy fails part way), mode 0600.
    type: path
  progress:
    description:
      - Path of a JSON file the run rewrites (atomically, about once a second) with how far it has got - per
        database the source keys and the keys done, the overall keys per second and the estimated time left -
        and finally C(phase=done) or C(phase=failed). Meant for polling a run started with C(async); the
        C(kvtools.migration.migrate) role uses it to show progress. Not written in check mode.
    type: path
'''
