# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One copy per target at a time, and a copy that stops when the playbook waiting for it is gone.

The lock is a file on the host that runs the copy (never a key: nothing is written to the source, and
kv_verify must not find a key the user never had).  It is held with ``flock`` for the life of the copy
process, so a crashed or killed copy releases it at once - a stale lock cannot outlive its owner.  The
file names its owner (module, pid, host, start time, progress file), which the second run reports.

The watch file ``<progress>.watch`` is renewed by kv_wait at every poll.  When it exists and has not
been renewed for the silence it states, the playbook that started the async copy was interrupted
(Ctrl-C) or killed: the copy stops at its next progress tick, keeps its checkpoint, and fails with
``error: interrupted``.  Without kv_wait there is no watch file and nothing changes.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import re
import socket
import tempfile
import time

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_iso

WATCH_SUFFIX = '.watch'


def lock_path(endpoint, directory=None):
    """The lock file of ``endpoint``'s server (its address, whatever db)."""
    directory = directory or os.environ.get('KVTOOLS_LOCK_DIR') or tempfile.gettempdir()
    address = endpoint.unix_socket or '%s:%s' % (endpoint.host, endpoint.port)
    if getattr(endpoint, 'sentinel', None) is not None:  # the service, wherever its master is now
        address = endpoint.identity
    readable = re.sub(r'[^A-Za-z0-9_.-]+', '_', address)[:60]
    digest = hashlib.sha256(address.encode('utf-8')).hexdigest()[:12]
    return os.path.join(directory, 'kvtools-copy-%s-%s.lock' % (readable, digest))


class TargetLock:
    """``with TargetLock(target_ep, 'kv_dump_restore', progress=path):`` - the copy runs alone into that target.

    Raises ``KVError(kind='locked')`` naming the owner when another process holds the lock.
    """

    def __init__(self, endpoint, module, progress=None, directory=None):
        self.endpoint = endpoint
        self.module = module
        self.progress = progress
        self.path = lock_path(endpoint, directory)
        self.fh = None

    def __enter__(self):
        if fcntl is None:  # pragma: no cover
            return self
        try:
            self.fh = open(self.path, 'a+')
        except (IOError, OSError) as exc:
            raise KVError('cannot open the lock file %s: %s (set KVTOOLS_LOCK_DIR to a writable folder)'
                          % (self.path, exc), kind='io', details={'path': self.path})
        try:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except (IOError, OSError):
            owner = self._owner()
            self.fh.close()
            self.fh = None
            raise KVError('another copy into the target %s is running: %s. Wait for it to finish '
                          '(kvtools.migration.kv_wait), or stop it (kill %s on %s); its lock (%s) is released the '
                          'moment that process ends' % (self.endpoint.address, self._describe(owner),
                                                        owner.get('pid', '?'), owner.get('host', '?'), self.path),
                          kind='locked', endpoint=self.endpoint.address, details={'owner': owner})
        owner = dict(module=self.module, pid=os.getpid(), host=socket.gethostname(), target=self.endpoint.address,
                     started=now_iso(), progress=self.progress)
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(json.dumps(owner, sort_keys=True))
        self.fh.flush()
        return self

    def __exit__(self, *exc_info):
        if self.fh is not None:
            try:
                self.fh.seek(0)
                self.fh.truncate()
            except (IOError, OSError):
                pass
            self.fh.close()  # closing releases the flock
            self.fh = None
        return False

    def _owner(self):
        try:
            with open(self.path) as fh:
                return json.loads(fh.read() or '{}')
        except (IOError, OSError, ValueError):
            return {}

    @staticmethod
    def _describe(owner):
        if not owner:
            return 'its owner did not say who it is'
        text = '%s, pid %s on %s, since %s' % (
            owner.get('module'), owner.get('pid'), owner.get('host'), owner.get('started'))
        if owner.get('progress'):
            text += ', progress in %s' % owner['progress']
        return text


def check_watch(progress, now=None, started=None):
    """Raise ``error: interrupted`` when the kv_wait that watches this copy stopped renewing its watch file.

    A watch file already stale when the copy ``started`` is a leftover of an earlier run: ignored.
    """
    if not progress:
        return
    path = progress + WATCH_SUFFIX
    try:
        renewed = os.stat(path).st_mtime
        with open(path) as fh:
            silence = float(json.loads(fh.read() or '{}').get('silence', 0))
    except (IOError, OSError, ValueError, TypeError, AttributeError):
        return  # no watcher (or it is being rewritten): nothing to check
    now = time.time() if now is None else now
    if started is not None and renewed < started - silence:
        return
    if silence > 0 and now - renewed > silence:
        raise KVError('stopped: the playbook waiting for this copy (kv_wait) is gone - interrupted with Ctrl-C or '
                      'killed - and has not looked at the job for %d s. The keys copied so far stay on the target'
                      % (now - renewed), kind='interrupted', details={'watch': path})
