# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The progress file of a copy (:class:`Progress`), which roles and kv_wait poll."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kvtools.migration.plugins.module_utils._progress import ProgressFile


class Progress:
    """The progress file of a copy (:class:`~._progress.ProgressFile`): per db the source keys (from INFO keyspace
    at the start) and the keys done, the DUMP payload bytes moved, the overall rates and the time left.  kv_wait
    polls it to show progress of a long copy."""

    FORMAT = 1

    def __init__(self, path, totals, interval=1.0, bytes_total=None):
        self.file = ProgressFile(path, interval)
        self.path = path
        self.totals = totals
        self.bytes_total = bytes_total

    def update(self, states, phase, force=False):
        if not self.file.due(force):
            return
        dbs = []
        for state in states:
            entry = state.result
            dbs.append(dict(db=entry['db'], target_db=entry['target_db'],
                            total=self.totals.get(entry['db'], 0), done=entry['keys'],
                            copied=entry['copied'], identical=entry['identical'], expired=entry['expired'],
                            failed=entry['failed'], bytes=entry.get('bytes', 0)))
        self.file.update(phase, done=sum(d['done'] for d in dbs), total=sum(d['total'] for d in dbs),
                         bytes_done=sum(d['bytes'] for d in dbs), bytes_total=self.bytes_total, dbs=dbs,
                         force=force, busy=phase == 'copying')
