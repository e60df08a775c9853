# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Validation of an RDB file or stream: magic and version, end opcode, CRC-64 trailer.

:class:`RdbValidator` checks the bytes as they pass (bounded memory); the backup engine feeds it a
replication transfer, ``verify_backup`` and ``decrypt_file`` feed it a file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re
import struct

from ansible_collections.kvtools.migration.plugins.module_utils._crc64 import Crc64
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

_RDB_MAGIC = re.compile(br'^(REDIS)(\d{4})$|^(VALKEY)(\d{3})$')


class RdbValidator:
    """Checks an RDB stream as it passes: magic and version, end opcode, CRC64 trailer.

    ``feed()`` the bytes in order, then ``finish()`` returns the facts or raises KVError
    (kind ``corrupt``).  Also counts the size and the sha256 of what it saw.
    """

    def __init__(self, what='the RDB transfer', crc=True):
        self.what = what
        self.with_crc = crc
        self.head = b''
        self.tail = b''
        self.crc = Crc64()
        self.sha = hashlib.sha256()
        self.size = 0

    def _fail(self, text):
        return KVError('%s is not a valid RDB file: %s' % (self.what, text), kind='corrupt')

    def feed(self, data):
        if not data:
            return
        self.sha.update(data)
        self.size += len(data)
        if len(self.head) < 9:
            self.head += bytes(data[:9 - len(self.head)])
            if len(self.head) == 9 and not _RDB_MAGIC.match(self.head):
                raise self._fail('it starts with %r, not REDISnnnn or VALKEYnnn' % self.head)
        # everything except the last 9 bytes (end opcode + CRC) goes into the CRC now
        buf = self.tail + bytes(data)
        if len(buf) > 9:
            if self.with_crc:
                self.crc.update(buf[:-9])
            self.tail = buf[-9:]
        else:
            self.tail = buf

    def finish(self):
        match = _RDB_MAGIC.match(self.head)
        if not match:
            raise self._fail('it is only %d bytes long' % self.size if self.size < 9
                             else 'it starts with %r' % self.head)
        version = int(match.group(2) or match.group(4))
        result = dict(rdb_version=version, magic=self.head.decode(), size=self.size,
                      sha256=self.sha.hexdigest())
        if version < 5:  # no checksum before RDB 5: the file ends with the end opcode
            if not self.tail.endswith(b'\xff'):
                raise self._fail('the end opcode 0xFF is missing (truncated?)')
            result.update(crc64=None, checksum='none (RDB version < 5)')
            return result
        if self.size < 18 or self.tail[:1] != b'\xff':
            raise self._fail('the end opcode 0xFF is not where the checksum trailer starts (truncated?)')
        stored = struct.unpack('<Q', self.tail[1:9])[0]
        if stored == 0:
            result.update(crc64=None, checksum='disabled')
            return result
        result.update(crc64='%016x' % stored, checksum='pending')
        if not self.with_crc:  # the caller computes the CRC later (check_crc)
            return result
        self.crc.update(self.tail[:1])
        return self.check_crc(result, self.crc.value)

    def check_crc(self, result, actual):
        """Compare the CRC64 of everything before the trailer with the trailer of ``result``."""
        stored = int(result['crc64'], 16)
        if actual != stored:
            raise self._fail('CRC64 mismatch (trailer says %016x, the content gives %016x): the transfer was '
                             'corrupted' % (stored, actual))
        result.update(checksum='verified')
        return result
