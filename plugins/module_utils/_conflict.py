# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What to do with a key the target already holds: identical, conflict, replace (written once).

Both writers (RESTORE and MIGRATE) read the target's state of the keys they are about to write with
:func:`target_entries` and let :func:`sort_existing` decide, by ``on_conflict``:

* absent on the target: write it;
* identical (same value and expiry within :data:`TTL_TOLERANCE_MS`): count it, write nothing;
* different: a conflict; ``replace`` writes it over the target's, ``skip`` keeps the target's,
  ``fail`` keeps it too and lists it (the job stops before its first write when the plan found any).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import sample_key
from ansible_collections.kvtools.migration.plugins.module_utils._payload import same_body
from ansible_collections.kvtools.migration.plugins.module_utils._payload_canon import same_unordered
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import values_equal

TTL_TOLERANCE_MS = 1000
ON_CONFLICT = ('fail', 'skip', 'replace')


def add(counts, name, value=1):
    counts[name] = counts.get(name, 0) + value


def same_entry(item, existing, source_client=None, target_client=None, scope=None):
    """Whether the target's ``existing`` entry holds the value and expiry of the source's ``item``.

    Payloads are compared without their RDB footer; where they still differ (another encoding or RDB
    format) and the source offers live values (``source_client``), the values are compared type-aware, with
    what both servers hold beyond the value when ``scope`` (a :class:`~._type_aware.CompareScope`) says; without
    (a file as the source) a set, hash or sorted set is compared element by element from the two payloads
    (:func:`~._payload_canon.same_unordered`).
    """
    key, payload, expire_at = item[0], item[1], item[2]
    t_payload, t_exp = existing[1], existing[2]
    if (expire_at is None) != (t_exp is None):
        return False
    if expire_at is not None and abs(expire_at - t_exp) > TTL_TOLERANCE_MS:
        return False
    if same_body(payload, t_payload):
        return True
    if source_client is None:  # a file: no live values, but a set, hash or sorted set may be read from its payload
        return same_unordered(payload, t_payload)
    return values_equal(source_client, target_client, key, scope,
                        big=payload.__class__ is not bytes or t_payload.__class__ is not bytes)


def sort_existing(items, existing, on_conflict, same, db, counts, failures, after_plan=False, skipped=None,
                  defer=None):
    """Split ``items`` by what the target holds (``existing``: its entry per item, payload None when absent).

    Returns ``(to write, keys to write with REPLACE)`` and updates ``counts`` and ``failures``.
    ``same(item, entry)`` compares one pair.  ``after_plan``: the keys appeared on the target after the
    plan (RESTORE or MIGRATE answered BUSYKEY): a conflict that is not replaced counts as failed unless
    ``on_conflict`` is skip, and a key that vanished again counts as a conflict.  ``skipped``: a list the names of
    the keys left as the target holds them (on_conflict=skip) are appended to.  ``defer(keys)``: of the keys
    on_conflict=replace would overwrite, those a later source db of a merge writes anyway (left for it, so a
    rerun writes nothing).
    """
    todo = []
    replace_keys = set()
    replacing = []
    for item, entry in zip(items, existing):
        if entry[1] is None and not after_plan:
            todo.append(item)
            continue
        if entry[1] is not None and same(item, entry):
            add(counts, 'identical')
            continue
        add(counts, 'conflicts')
        if on_conflict == 'replace':
            replacing.append(item)
            continue
        if on_conflict == 'skip':
            add(counts, 'skipped')
            if skipped is not None:
                skipped.append(item[0])
        elif after_plan:
            add(counts, 'failed')
        failures.append(dict(db=db, key=sample_key(item[0]), reason='conflict'))
    deferred = defer([item[0] for item in replacing]) if defer is not None and replacing else ()
    for item in replacing:
        if item[0] not in deferred:
            replace_keys.add(item[0])
            todo.append(item)
    return todo, replace_keys
