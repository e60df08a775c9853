# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Detached helper processes (kv_isolate's pause renewer, kv_sync's follower) and how to recognise them later.

A helper outlives the module task that starts it.  It is forked twice (the task does not have to reap it),
runs in a session of its own with stdio and every inherited descriptor on /dev/null (so Ansible does
not wait for it), ignores SIGHUP, and gets what it needs from the parent's memory: no secret reaches its
argv or its environment.  Its owner records its pid with the kernel's start time of that pid, so a recycled
pid is never taken for it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError


def process_start_time(pid):
    """The kernel's start time of ``pid`` (Linux), so a recycled pid is never signalled; None if gone."""
    try:
        with open('/proc/%d/stat' % int(pid), 'r') as fh:
            stat = fh.read()
    except (IOError, OSError, ValueError, TypeError):
        return None
    fields = stat.rsplit(')', 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_alive(pid, start_time=None):
    """Whether ``pid`` runs (not a zombie) and, when ``start_time`` is given, is still the process started then."""
    if not pid:
        return False
    started = process_start_time(pid)
    if started is None:
        return False
    if start_time is not None and started != start_time:
        return False
    try:
        with open('/proc/%d/stat' % int(pid)) as fh:
            if fh.read().rsplit(')', 1)[-1].split()[0] == 'Z':
                return False
    except (IOError, OSError):
        return False
    return True


def _inherited_fds():
    """The descriptors open in this process (``/proc/self/fd``; a probe of the first 4096 elsewhere)."""
    try:
        names = os.listdir('/proc/self/fd')
    except OSError:
        names = [str(fd) for fd in range(4096)]
    found = []
    for name in names:
        fd = int(name)
        try:
            os.fstat(fd)
        except OSError:  # the listing's own descriptor, already closed again, or a gap
            continue
        found.append(fd)
    return found


def _park_inherited(devnull):
    """Point every inherited descriptor above 2 at /dev/null instead of closing it.

    The parent's Python objects (sockets, files) live on in the child and still believe they own their
    descriptor numbers; when one of them is collected it closes its number.  Had the number been closed
    and reused by a file or socket the helper opened itself, that close would cut the helper's own file
    (seen: the follower's keys log failing with EBADF after a few seconds).  Parked on /dev/null, the number
    stays taken until its old owner closes it, and nothing the helper opens can be hit.  Nothing leads back
    to the parent's pipes, so Ansible does not wait for the helper.
    """
    for fd in _inherited_fds():
        if fd > 2 and fd != devnull:
            try:
                os.dup2(devnull, fd)
            except OSError:
                pass


def start_detached(what, target, *args):
    """Run ``target(*args)`` in a detached grandchild (see the module docstring); returns its pid.

    ``what`` names the process in the error raised when it could not be started.  The grandchild ends with
    ``os._exit`` when ``target`` returns or raises: it never returns into the caller's code.
    """
    read_fd, write_fd = os.pipe()
    first = os.fork()
    if first == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read_fd)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            os.write(write_fd, str(os.getpid()).encode())
            os.close(write_fd)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            _park_inherited(devnull)
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            target(*args)
        finally:
            os._exit(0)
    os.close(write_fd)
    os.waitpid(first, 0)
    chunks = []
    while True:
        chunk = os.read(read_fd, 64)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    try:
        return int(b''.join(chunks))
    except ValueError:
        raise KVError('could not start the %s process' % what, kind='error')
