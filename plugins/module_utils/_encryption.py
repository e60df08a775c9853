# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Encrypted backups: AES-256-GCM in authenticated chunks, the key derived with scrypt (KVTENC1).

:class:`EncryptWriter` encrypts what it is given into a file; :class:`DecryptReader` returns the
plain bytes and fails on a wrong passphrase before the first byte, on a changed, reordered, dropped or
truncated chunk when it is reached.  :func:`open_plain` opens a plain or encrypted file alike.  The
format is described in ``docs/backup-format.md``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import hmac
import json
import os
import struct

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    HAS_CRYPTOGRAPHY = True
except ImportError:  # pragma: no cover - reported when a passphrase is given
    InvalidTag = AESGCM = Scrypt = None
    HAS_CRYPTOGRAPHY = False

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError

ENC_MAGIC = b'KVTENC1\n'
ENC_CHUNK = 1 << 20
KDF_PARAMS = dict(kdf='scrypt', n=1 << 15, r=8, p=1)   # 32 MiB and about 0.2 s per derivation
_KDF_LIMITS = dict(n=1 << 20, r=32, p=16)
_KEY_CHECK_LABEL = b'kvtools.migration backup key check'
HEADER_LIMIT = 1 << 16


def need_cryptography():
    if not HAS_CRYPTOGRAPHY:
        raise KVError('encrypted backups need the Python library cryptography (pip install cryptography) on the '
                      'host that runs the module', kind='config')


def _derive(passphrase, salt, params):
    need_cryptography()
    if not passphrase:
        raise KVError('the passphrase must not be empty', kind='config')
    secret = passphrase.encode('utf-8') if not isinstance(passphrase, bytes) else passphrase
    material = Scrypt(salt=salt, length=64, n=int(params['n']), r=int(params['r']), p=int(params['p'])).derive(secret)
    key, check_key = material[:32], material[32:]
    check = hmac.new(check_key, _KEY_CHECK_LABEL, hashlib.sha256).hexdigest()[:32]
    return key, check


def _aad(header_digest, index, final):
    return header_digest + struct.pack('>QB', index, 1 if final else 0)


def _nonce(prefix, index):
    return prefix + struct.pack('>Q', index)


class EncryptWriter:
    """A file-like writer that encrypts what it is given into ``fh`` (the KVTENC1 format)."""

    def __init__(self, fh, passphrase, content, chunk_size=ENC_CHUNK):
        need_cryptography()
        self.fh = fh
        self.chunk_size = int(chunk_size)
        salt = os.urandom(16)
        self.prefix = os.urandom(4)
        key, check = _derive(passphrase, salt, KDF_PARAMS)
        self.aes = AESGCM(key)
        header = dict(format=1, cipher='AES-256-GCM', kdf=KDF_PARAMS['kdf'], n=KDF_PARAMS['n'], r=KDF_PARAMS['r'],
                      p=KDF_PARAMS['p'], salt=salt.hex(), nonce_prefix=self.prefix.hex(), chunk_size=self.chunk_size,
                      key_check=check, content=content)
        raw = json.dumps(header, sort_keys=True).encode('utf-8')
        lead = ENC_MAGIC + struct.pack('>I', len(raw)) + raw
        self.digest = hashlib.sha256(lead).digest()
        self.fh.write(lead)
        self.buf = bytearray()
        self.index = 0

    def _emit(self, data, final):
        sealed = self.aes.encrypt(_nonce(self.prefix, self.index), bytes(data), _aad(self.digest, self.index, final))
        self.fh.write(struct.pack('>I', len(sealed)))
        self.fh.write(sealed)
        self.index += 1

    def write(self, data):
        self.buf += data
        while len(self.buf) > self.chunk_size:  # keep at least one byte back: the last chunk is final
            self._emit(self.buf[:self.chunk_size], False)
            del self.buf[:self.chunk_size]

    def close(self):
        self._emit(self.buf, True)
        self.buf = bytearray()


def _read_exact(fh, size, what):
    data = fh.read(size)
    if len(data) != size:
        raise KVError('%s is truncated' % what, kind='corrupt')
    return data


def read_enc_header(fh, path):
    """``(header dict, digest of the header bytes)`` of an encrypted file positioned at its start."""
    magic = fh.read(len(ENC_MAGIC))
    if magic != ENC_MAGIC:
        raise KVError('%s is not an encrypted kvtools backup' % path, kind='corrupt')
    size = struct.unpack('>I', _read_exact(fh, 4, path))[0]
    if size > HEADER_LIMIT:
        raise KVError('%s has an implausible header (%d bytes): not a kvtools backup' % (path, size), kind='corrupt')
    raw = _read_exact(fh, size, path)
    try:
        header = json.loads(raw.decode('utf-8'))
    except ValueError:
        raise KVError('%s has an unreadable encryption header' % path, kind='corrupt')
    if header.get('format') != 1 or header.get('cipher') != 'AES-256-GCM' or header.get('kdf') != 'scrypt':
        raise KVError('%s uses an encryption format this collection does not know: %s'
                      % (path, dict((k, header.get(k)) for k in ('format', 'cipher', 'kdf'))), kind='corrupt')
    for name, limit in _KDF_LIMITS.items():
        if not 0 < int(header.get(name, 0)) <= limit:
            raise KVError('%s asks for scrypt %s=%s (more than %d): refused' % (path, name, header.get(name), limit),
                          kind='corrupt')
    return header, hashlib.sha256(ENC_MAGIC + struct.pack('>I', size) + raw).digest()


class DecryptReader:
    """Reads an encrypted file and returns the plain bytes: ``read(n)`` (file-like) or ``chunks()``.

    A wrong passphrase fails before any byte is returned (kind ``passphrase``); a changed,
    reordered, dropped or truncated chunk fails when it is reached (kind ``corrupt``).
    """

    def __init__(self, fh, passphrase, path='the backup'):
        self.fh = fh
        self.path = path
        self.header, self.digest = read_enc_header(fh, path)
        key, check = _derive(passphrase, bytes.fromhex(self.header['salt']), self.header)
        if not hmac.compare_digest(check, str(self.header.get('key_check', ''))):
            raise KVError('cannot decrypt %s: the passphrase is wrong' % path, kind='passphrase')
        self.aes = AESGCM(key)
        self.prefix = bytes.fromhex(self.header['nonce_prefix'])
        self.limit = int(self.header['chunk_size']) + 16
        self.index = 0
        self.done = False
        self.buf = b''
        self.pos = 0

    @property
    def content(self):
        return self.header.get('content')

    def _next(self):
        if self.done:
            return None
        lead = self.fh.read(4)
        if len(lead) != 4:
            raise KVError('%s is truncated: its last encrypted chunk is missing' % self.path, kind='corrupt')
        size = struct.unpack('>I', lead)[0]
        if size < 16 or size > self.limit:
            raise KVError('%s is corrupt: chunk %d has an impossible length' % (self.path, self.index), kind='corrupt')
        sealed = _read_exact(self.fh, size, self.path)
        nonce = _nonce(self.prefix, self.index)
        plain = None
        for final in (False, True):
            try:
                plain = self.aes.decrypt(nonce, sealed, _aad(self.digest, self.index, final))
            except InvalidTag:
                continue
            if final:
                self.done = True
                if self.fh.read(1):
                    raise KVError('%s is corrupt: data follows its final chunk' % self.path, kind='corrupt')
            break
        if plain is None:
            raise KVError('%s is corrupt: chunk %d fails authentication (changed, reordered or truncated)'
                          % (self.path, self.index), kind='corrupt')
        self.index += 1
        return plain

    def chunks(self):
        while True:
            plain = self._next()
            if plain is None:
                return
            yield plain

    def read(self, size):
        out = []
        want = size
        while want > 0:
            if self.pos >= len(self.buf):
                nxt = self._next()
                if nxt is None:
                    break
                self.buf, self.pos = nxt, 0
                continue
            part = self.buf[self.pos:self.pos + want]
            self.pos += len(part)
            want -= len(part)
            out.append(part)
        return b''.join(out)


def is_encrypted(path):
    with open(path, 'rb') as fh:
        return fh.read(len(ENC_MAGIC)) == ENC_MAGIC


def open_plain(path, passphrase=None):
    """``(file-like of the plain content, fh to close, content or None)`` for a plain or encrypted file."""
    try:
        fh = open(path, 'rb')
    except (IOError, OSError) as exc:
        raise KVError('cannot open %s: %s' % (path, exc), kind='config')
    try:
        lead = fh.read(len(ENC_MAGIC))
        fh.seek(0)
        if lead == ENC_MAGIC:
            if not passphrase:
                raise KVError('%s is encrypted: give its passphrase' % path, kind='passphrase')
            reader = DecryptReader(fh, passphrase, path)
            return reader, fh, reader.content
        return fh, fh, None
    except Exception:
        fh.close()
        raise
