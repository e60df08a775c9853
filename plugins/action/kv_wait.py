# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Wait for an async copy and print its progress while waiting (see plugins/modules/kv_wait.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._lock import WATCH_SUFFIX
from ansible_collections.kvtools.migration.plugins.module_utils._ranges import WAIT_RANGES, check_value

display = Display()


def watch_silence(interval):
    """Seconds without a poll after which the copy takes its watcher for gone: three polls missed, plus slack."""
    return int(3 * interval + 10)


# Keys of async_status's own that are not part of the copy's result.
ASYNC_KEYS = ('ansible_job_id', 'started', 'finished', 'results_file', 'erased', 'stdout', 'stderr',
              'stdout_lines', 'stderr_lines')


def _mb(value):
    return '{:,.1f} MB'.format(value / 1e6)


def progress_line(data):
    """One line for an operator from the progress file the copy, backup and verify engines keep
    (module_utils/_progress.py): keys of the total and bytes (of the total when known), with their rates."""
    parts = []
    for entry in data.get('dbs', []):
        parts.append('db%d %d/%d' % (entry['db'], entry['done'], entry['total']))
    counted = []
    rates = []
    if data.get('total') or 'bytes_done' not in data:
        counted.append('%d of %d keys' % (data.get('done', 0), data.get('total', 0)))
        rates.append('%d keys/s' % data.get('keys_per_second', 0))
    if 'bytes_done' in data:
        counted.append(_mb(data['bytes_done']) + (' of ' + _mb(data['bytes_total']) if data.get('bytes_total') else ''))
        rates.append(_mb(data.get('bytes_per_second', 0)) + '/s')
    percent = data.get('percent')
    text = '%s %s(%s), %s' % (data.get('phase', '?'), '' if percent is None else '%s%% ' % percent,
                              ', '.join(counted), ', '.join(rates))
    eta = data.get('eta_seconds')
    if eta is not None:
        text += ', about %ds left' % eta
    if parts:
        text += ' - ' + ', '.join(parts)
    return text


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('jid', 'progress', 'interval', 'timeout', 'label'))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp
        args = self._task.args
        jid = args.get('jid')
        if not jid:
            raise AnsibleActionFail('jid is required: the ansible_job_id of the task started with async')
        progress = args.get('progress')
        try:
            interval = float(args.get('interval', 10))
            timeout = float(args.get('timeout', 0) or 0)
        except (TypeError, ValueError):
            raise AnsibleActionFail('interval and timeout must be numbers of seconds')
        try:
            check_value('interval', interval, WAIT_RANGES['interval'])
            check_value('timeout', timeout, WAIT_RANGES['timeout'])
        except KVError as exc:
            result.update(failed=True, **exc.to_result())
            return result
        label = args.get('label') or self._task.get_name()
        host = task_vars.get('inventory_hostname', '?') if task_vars else '?'
        # where the async wrapper keeps job files: the same lookup as ansible.builtin.async_status
        async_dir = self.get_shell_option('async_dir', default='~/.ansible_async')
        started = time.time()
        last_line = None
        delay = min(interval, 0.5)  # short copies end quickly; long ones are polled every `interval` seconds
        watch = None  # made after the first look at the progress, so a short copy is seen before it ends
        while True:
            status = self._execute_module(module_name='ansible.builtin.async_status',
                                          module_args=dict(jid=jid, _async_dir=async_dir), task_vars=task_vars)
            if status.get('finished'):
                break
            if status.get('failed') and 'started' not in status:
                status.pop('finished', None)
                result.update(status)
                self._watch_end(watch, task_vars)
                return result
            if progress:
                line = self._progress(progress, task_vars)
                if line and line != last_line:
                    if last_line is None and self._pid is not None:
                        hint = 'job %s runs as pid %s; interrupting this playbook (Ctrl-C) stops it within %d s, ' \
                               'or stop it with: kill %s' % (jid, self._pid, watch_silence(interval), self._pid)
                        display.display('%s: %s: %s' % (host, label, hint))
                    display.display('%s: %s: %s' % (host, label, line))
                    last_line = line
                if watch is None:
                    watch = self._watch_start(progress, interval, task_vars)
                else:
                    self._watch_renew(watch, task_vars)
            if timeout and time.time() - started > timeout:
                self._watch_end(watch, task_vars)  # the job keeps running: nobody watches it any more
                result.update(failed=True, msg='%s did not finish within %d seconds (job %s still runs; its progress '
                                               'is in %s)' % (label, timeout, jid, progress or 'no progress file'))
                return result
            time.sleep(delay)
            delay = min(interval, delay * 2)
        self._watch_end(watch, task_vars)
        if progress:  # the last state too, so a step shorter than the first poll still shows what it moved
            line = self._progress(progress, task_vars)
            if line and line != last_line:
                display.display('%s: %s: %s' % (host, label, line))
        self._execute_module(module_name='ansible.builtin.async_status',
                             module_args=dict(jid=jid, mode='cleanup', _async_dir=async_dir), task_vars=task_vars)
        for key in ASYNC_KEYS:
            status.pop(key, None)
        result.update(status)
        return result

    _pid = None

    def _progress(self, path, task_vars):
        reply = self._execute_module(module_name='ansible.builtin.slurp', module_args=dict(src=path),
                                     task_vars=task_vars)
        if reply.get('failed') or 'content' not in reply:
            return None
        try:
            data = json.loads(to_text(base64.b64decode(reply['content'])))
            self._pid = data.get('pid')
            return progress_line(data)
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    # The watch file (see module_utils/_lock.py): renewed at every poll; when this playbook is interrupted the
    # renewals stop and the copy stops itself after the silence written into the file.
    def _watch_start(self, progress, interval, task_vars):
        path = progress + WATCH_SUFFIX
        reply = self._execute_module(module_name='ansible.builtin.lineinfile', task_vars=task_vars, module_args=dict(
            path=path, create=True, mode='0600', regexp='silence', line=json.dumps({'silence': watch_silence(interval)})))
        return None if reply.get('failed') else path

    def _watch_renew(self, path, task_vars):
        if path:
            self._execute_module(module_name='ansible.builtin.file', task_vars=task_vars,
                                 module_args=dict(path=path, state='touch'))

    def _watch_end(self, path, task_vars):
        if path:
            self._execute_module(module_name='ansible.builtin.file', task_vars=task_vars,
                                 module_args=dict(path=path, state='absent'))
