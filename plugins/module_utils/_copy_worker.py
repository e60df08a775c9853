# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A worker thread of a copy: the reader and writer it owns (see :class:`~._copy.CopyJob`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class DbWorker:
    """One worker thread's reader and writer for one db (of a ``parted`` source - a cluster's masters - one pair
    per part, made when its first batch comes)."""

    def __init__(self, job, state, values, planning, check_existing):
        self.args = (job, state, values, planning, check_existing)
        self.parted = getattr(job.source, 'parted', False)
        self.pairs = {}
        if not self.parted:
            self.reader, self.writer = self._pair(None)

    def _pair(self, part):
        job, state, values, planning, check_existing = self.args
        if part is None:
            reader = job.source.reader(state.result['db'], values, job.opts.batch_size)
        else:
            reader = job.source.reader(state.result['db'], values, job.opts.batch_size, part)
        try:
            writer = job.writer(job, state, reader, planning, check_existing)
        except Exception:
            reader.close()
            raise
        self.pairs[part] = (reader, writer)
        return reader, writer

    def process(self, work):
        if self.parted:
            part, work = work
            reader, writer = self.pairs.get(part) or self._pair(part)
        else:
            reader, writer = self.reader, self.writer
        for batch in reader.read(work):
            writer.write(batch)

    def close(self):
        errors = []
        for reader, writer in self.pairs.values():
            for closing in (writer.close, reader.close):
                try:
                    closing()
                except Exception as exc:  # close every connection, then say what failed first
                    errors.append(exc)
        if errors:
            raise errors[0]
