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
      - "Two source databases sent into one target database (a merge, for example C({1: 3, 7: 3})) are refused unless
        O(allow_db_merge=true)."
    type: dict
  allow_db_merge:
    description:
      - Allow O(db_map) to send several source databases into one target database (a merge).
      - The copy writes the databases in the order of their numbers. A key in more than one of them is a conflict
        handled by C(on_conflict) - V(skip) keeps the value of the first database written (the lowest number),
        V(replace) the value of the last (the highest number), V(fail) stops before anything is written when
        merged databases hold such a key with different values.
      - M(kvtools.migration.kv_verify) compares each target database with the union of its source databases; given
        C(on_conflict) it checks that a key in several of them holds the value C(on_conflict) keeps.
      - Not possible with M(kvtools.migration.kv_sync) (the live strategy) - it refuses merges.
    type: bool
    default: false
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
  on_unsupported:
    description:
      - What to do when the source holds data the target cannot hold. Today that is hash field TTLs (C(HEXPIRE),
        Redis 7.4+ and Valkey 9+) copied to an older target; they are counted before anything is written.
      - V(fail) stops before anything is written and says how many fields of how many hashes have a TTL.
      - V(drop) copies those hashes without their field TTLs (the fields themselves are kept); the result's
        C(unsupported), a warning and the report say how many fields of how many keys lost their TTL.
      - Where the target holds field TTLs they are always copied exactly.
    type: str
    choices: [fail, drop]
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
  skipped_keys_file:
    description:
      - Path of a file to record the keys O(on_conflict=skip) left as the target held them, for
        the C(skipped_keys_file) of M(kvtools.migration.kv_verify) - a verification
        then reports those keys as skipped instead of failing on them.
      - Binary (the keys log format of C(kv_sync) - the header C(KVTKEYS1), then per key its source database and its
        name's length, 4 bytes each, big-endian, and the name), so any key name is recorded exactly. Mode 0600.
      - Started afresh by every run, added to by a run that resumes from its C(checkpoint). Not written in check mode.
    type: path
'''
