# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The progress file of a long step: a small JSON file that ``kv_wait`` reads while the step runs.

One format for every step that takes time - the copy (:mod:`._copy`), the backup (:mod:`._backup`) and
the verification (``kv_verify``): ``phase``, ``done`` of ``total`` keys and ``bytes_done`` of
``bytes_total`` bytes (either may be absent or zero when the step does not count it), the rates, the time
left and the step's pid.  Counting bytes as well as keys is what shows a 200 MB value moving.
:class:`ProgressFile` rewrites it atomically at most every ``interval`` seconds and checks the watch file
of ``kv_wait`` (:func:`~._lock.check_watch`): when the playbook that waits is gone, the step stops.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._files import atomic_write
from ansible_collections.kvtools.migration.plugins.module_utils._lock import check_watch

FORMAT = 1


class ProgressFile:
    """``update(phase, done=, total=, bytes_done=, bytes_total=, dbs=, force=)`` - see the module docstring."""

    def __init__(self, path, interval=1.0):
        self.path = path
        self.interval = interval
        self.started = time.time()
        self.last = 0.0
        self.lock = threading.Lock()

    def due(self, force=False):
        return force or time.time() - self.last >= self.interval

    def update(self, phase, done=0, total=0, bytes_done=None, bytes_total=None, dbs=None, force=False, busy=True):
        """Write the file (at most every ``interval`` s unless ``force``); ``busy``: the time left means something."""
        now = time.time()
        if not force and now - self.last < self.interval:
            return
        with self.lock:
            if not force and now - self.last < self.interval:
                return
            self.last = now
            if not force:
                check_watch(self.path, now, self.started)  # the kv_wait watching this step is gone: stop here
            elapsed = max(now - self.started, 1e-6)
            total = max(total or 0, done or 0)
            rate = (done or 0) / elapsed
            data = dict(format=FORMAT, phase=phase, pid=os.getpid(), started=round(self.started, 3),
                        updated=round(now, 3), elapsed=round(elapsed, 1), done=done or 0, total=total,
                        keys_per_second=round(rate, 1), dbs=dbs or [])
            eta = None
            if total:
                data['percent'] = round(100.0 * done / total, 1)
                if rate > 0 and busy:
                    eta = round((total - done) / rate, 1)
            if bytes_done is not None:
                byte_rate = bytes_done / elapsed
                data.update(bytes_done=bytes_done, bytes_per_second=round(byte_rate, 1))
                if bytes_total:
                    bytes_total = max(bytes_total, bytes_done)
                    data['bytes_total'] = bytes_total
                    if not total:
                        data['percent'] = round(100.0 * bytes_done / bytes_total, 1)
                        if byte_rate > 0 and busy:
                            eta = round((bytes_total - bytes_done) / byte_rate, 1)
            if 'percent' not in data:  # nothing to count (an empty copy: done) or no total known (None)
                data['percent'] = 100.0 if bytes_done is None else None
            data['eta_seconds'] = eta
            atomic_write(self.path, json.dumps(data, sort_keys=True))
