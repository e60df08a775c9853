# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Backups of a whole server: the RDB file over the replication protocol, or a logical file.

* :class:`Backup` is the engine of ``kv_rdb_backup``.  ``method='sync'`` speaks to the server as
  ``redis-cli --rdb`` does (``REPLCONF capa eof``, ``REPLCONF rdb-only 1``, ``REPLCONF version``,
  then ``SYNC``) and accepts a sized transfer (``$<len>``) as well as a diskless stream
  (``$EOF:<40-byte mark>``).  ``method='logical'`` writes every key's DUMP payload and absolute
  expiry into the file format below.  ``method='auto'`` tries ``sync`` and falls back to
  ``logical`` when the server refuses SYNC.
* What is received is validated before it is called a backup: the RDB magic and version, the end
  opcode and the CRC64 trailer (:class:`Crc64`, Redis's Jones polynomial).  Everything is streamed
  to a temporary file next to ``dest`` (bounded memory), synced and renamed into place only when
  complete; a failure leaves nothing behind.
* With a passphrase the file is encrypted with AES-256-GCM in authenticated chunks
  (:class:`EncryptWriter` / :class:`DecryptReader`); :func:`decrypt_file` turns it back into the
  plain file.
* :func:`iter_logical` and :func:`logical_header` read a logical backup (plain or encrypted).

The file formats are described in ``docs/backup-format.md``.  The server only ever sees AUTH,
INFO, REPLCONF, SYNC, SCAN, DUMP and PEXPIRETIME/PTTL: a backup never writes to it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import time

from ansible_collections.kvtools.migration.plugins.module_utils._backup_files import (
    backup_path, check_free_space, expected_backup_bytes, rotation_plan)
from ansible_collections.kvtools.migration.plugins.module_utils._crc64 import CRC_BLOCK, Crc64
from ansible_collections.kvtools.migration.plugins.module_utils._dumpread import DumpReader, live_entries
from ansible_collections.kvtools.migration.plugins.module_utils._encryption import (
    DecryptReader, EncryptWriter, is_encrypted, need_cryptography, open_plain)
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, scrub
from ansible_collections.kvtools.migration.plugins.module_utils._files import (
    READ_SIZE, TempOutput, atomic_write, file_sha256, hash_stream)
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import db_result, scan_batches
from ansible_collections.kvtools.migration.plugins.module_utils._logical import (
    LOGICAL_MAGIC, LogicalWriter, iter_logical, logical_header)
from ansible_collections.kvtools.migration.plugins.module_utils._progress import ProgressFile
from ansible_collections.kvtools.migration.plugins.module_utils._rdb_validate import RdbValidator
from ansible_collections.kvtools.migration.plugins.module_utils._replication import (
    DEFAULT_CAPABILITIES, ReplicationStream, SyncRefused)
from ansible_collections.kvtools.migration.plugins.module_utils._cluster import refuse_cluster
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._text import iso_time, now_ms
from ansible_collections.kvtools.migration.plugins.module_utils._wire import Wire

SIDECAR_VERSION = 1


def verify_backup(path, passphrase=None):
    """Read a whole backup (RDB or logical, plain or encrypted) and check it.

    Returns ``{'content': 'rdb'|'logical', 'encrypted', 'content_size', 'content_sha256', ...}``
    plus the RDB facts (rdb_version, checksum) or the logical trailer (keys, dbs).
    """
    encrypted = is_encrypted(path)
    src, fh, content = open_plain(path, passphrase)
    try:
        head = src.read(len(LOGICAL_MAGIC))
    finally:
        fh.close()
    if head == LOGICAL_MAGIC:
        stats = {}
        sha = hashlib.sha256()
        for dummy in iter_logical(path, passphrase, stats, payloads=False):
            pass
        src, fh, content = open_plain(path, passphrase)
        try:
            size = hash_stream(src, sha)
        finally:
            fh.close()
        out = dict(content='logical', keys=stats.get('keys'), dbs=stats.get('dbs'),
                   header=logical_header(path, passphrase))
        out.update(encrypted=encrypted, content_size=size, content_sha256=sha.hexdigest())
        return out
    validator = RdbValidator(path)
    src, fh, content = open_plain(path, passphrase)
    try:
        while True:
            data = src.read(READ_SIZE)
            if not data:
                break
            validator.feed(data)
    finally:
        fh.close()
    facts = validator.finish()
    out = dict(content='rdb', encrypted=encrypted, content_size=facts.pop('size'),
               content_sha256=facts.pop('sha256'))
    out.update(facts)
    return out


def content_crc64(path, passphrase, length):
    """CRC64 of the first ``length`` plain bytes of a (possibly encrypted) file."""
    src, fh, dummy = open_plain(path, passphrase)
    crc = Crc64()
    try:
        while length > 0:
            data = src.read(min(CRC_BLOCK, length))
            if not data:
                break
            crc.update(data)
            length -= len(data)
    finally:
        fh.close()
    return crc.value


def decrypt_file(src_path, dest, passphrase, mode=0o600, check_mode=False):
    """Decrypt an encrypted backup into ``dest`` (atomically); returns a result dict.

    The plain content is validated (RDB checksum or logical trailer) before it is moved into
    place; a wrong passphrase or a damaged file leaves nothing at ``dest``.  ``changed`` is false
    when ``dest`` already holds exactly the decrypted content.
    """
    if not os.path.exists(src_path):
        raise KVError('src %s does not exist' % src_path, kind='config')
    if not is_encrypted(src_path):
        raise KVError('%s is not an encrypted kvtools backup' % src_path, kind='config')
    out = None
    fh = open(src_path, 'rb')
    try:
        reader = DecryptReader(fh, passphrase, src_path)
        content = reader.content
        if check_mode:
            return dict(changed=True, src=src_path, dest=dest, content=content, check_mode=True)
        out = TempOutput(dest, mode)
        validator = RdbValidator(src_path) if content == 'rdb' else None
        for plain in reader.chunks():
            out.write(plain)
            if validator:
                validator.feed(plain)
        facts = validator.finish() if validator else {}
        out.close()
        if content == 'logical':
            facts = verify_backup(out.tmp)
            facts.pop('header', None)
        result = dict(src=src_path, dest=dest, content=content, size=out.sink.size, sha256=out.sink.sha.hexdigest(),
                      check_mode=False)
        for name in ('rdb_version', 'checksum', 'crc64', 'keys', 'dbs'):
            if name in facts:
                result[name] = facts[name]
        if os.path.exists(dest) and file_sha256(dest) == result['sha256']:
            out.abort()
            result['changed'] = False
            return result
        out.commit(dest)
        result['changed'] = True
        return result
    except Exception:
        if out is not None:
            out.abort()
        raise
    finally:
        fh.close()


def backup_output(dest, passphrase, content, mode):
    """A temp file next to ``dest`` for a backup of ``content`` ('rdb' or 'logical'), encrypted with a passphrase."""
    if not passphrase:
        return TempOutput(dest, mode)
    return TempOutput(dest, mode, encoder=lambda sink: EncryptWriter(sink, passphrase, content))


class Backup:
    """One kv_rdb_backup run.  ``run()`` returns the result dict or raises KVError."""

    def __init__(self, endpoint, dest, method='auto', passphrase=None, keep=0, mode=0o600, check_mode=False,
                 warn=None, capabilities=DEFAULT_CAPABILITIES, keep_first=False, check_space=True, progress=None):
        if method not in ('auto', 'sync', 'logical'):
            raise KVError('method must be auto, sync or logical', kind='config')
        if keep is None or int(keep) < 0:
            raise KVError('keep must be 0 or more', kind='config')
        if not dest:
            raise KVError('dest is required', kind='config')
        if passphrase is not None and not passphrase:
            raise KVError('passphrase must not be empty (leave it out for a plain backup)', kind='config')
        if passphrase:
            need_cryptography()
        self.endpoint = endpoint
        self.dest = backup_path(os.path.abspath(os.path.expanduser(dest)), bool(passphrase))
        self.method = method
        self.keep_first = bool(keep_first)
        self.check_space = check_space
        self.progress = ProgressFile(progress) if progress and not check_mode else None
        self.space = None
        self.passphrase = passphrase
        self.keep = int(keep)
        self.mode = mode
        self.check_mode = check_mode
        self.warn_cb = warn or (lambda msg: None)
        self.warnings = []
        self.capabilities = capabilities
        self.server = None
        self.node_of_cluster = False  # True: one part of a cluster's backup (see _backup_cluster)

    def _warn(self, msg):
        msg = scrub(msg, self.endpoint.secrets + [self.passphrase or ''])
        self.warnings.append(msg)
        self.warn_cb(msg)

    # -- facts -------------------------------------------------------------------------------
    def _facts(self, need):
        """Engine, version and keyspace from INFO.  Optional for SYNC (a user may lack INFO)."""
        try:
            self.server = connect_server(self.endpoint)
        except KVError as exc:
            if need or exc.kind != 'noperm':
                raise
            self._warn('INFO is not permitted (%s): the backup does not record the engine version' % exc.message)
            self.server = None
            return
        self.server.client.close()

    @property
    def of_cluster(self):
        """Whether the server given is a node of a cluster, whose backup is one part per master (run_cluster)."""
        return self.server is not None and self.server.cluster_enabled and not self.node_of_cluster

    def run_cluster(self, started):
        """The backup of a whole cluster: see :class:`._backup_cluster.ClusterBackup` (this engine refuses)."""
        # one node of a cluster holds only its slots: a backup of it is not the data
        raise refuse_cluster(self.server, 'server', 'kv_rdb_backup')

    @property
    def engine(self):
        return self.server.engine if self.server else None

    @property
    def version(self):
        return self.server.version_string if self.server else None

    def _directory_ok(self):
        directory = os.path.dirname(self.dest)
        if not os.path.isdir(directory):
            raise KVError('the directory of dest does not exist: %s' % directory, kind='config')
        if not os.access(directory, os.W_OK):
            raise KVError('the directory of dest is not writable: %s' % directory, kind='config')
        if os.path.isdir(self.dest):
            raise KVError('dest %s is a directory: give a file path' % self.dest, kind='config')

    def _check_space(self):
        """Before anything is written: the free bytes of dest's directory against the expected size."""
        if self.server is not None:
            need, basis = expected_backup_bytes(self.server.memory, self.server.info)
        else:
            need, basis = None, 'INFO is not permitted'
        if not self.check_space:
            need, basis = None, 'check_free_space is false'
        free = check_free_space(self.dest, need, basis)
        self.space = dict(directory=os.path.dirname(self.dest), free_bytes=free, needed_bytes=need, estimate=basis)
        if need is None and self.check_space:
            self._warn('free space for the backup not checked: the size of the data is unknown (%s)' % basis)

    def _tick(self, received, keys=None):
        if self.progress is not None:
            self.progress.update('receiving' if keys is None else 'dumping', done=keys or 0,
                                 total=self.keys_total if keys is not None else 0, bytes_done=received,
                                 bytes_total=self.space['needed_bytes'])

    keys_total = 0

    # -- run ---------------------------------------------------------------------------------
    def run(self):
        started = time.time()
        self._directory_ok()
        if self.check_mode:
            return self._plan(started)
        self._facts(need=self.method == 'logical')
        if self.of_cluster:
            return self.run_cluster(started)
        self._check_space()
        method_used = self.method
        result = None
        if self.method in ('auto', 'sync'):
            try:
                result = self._sync()
                method_used = 'sync'
            except SyncRefused as exc:
                if self.method == 'sync':
                    raise KVError('%s. Use method=logical (or auto) for a backup through SCAN and DUMP' % exc.message,
                                  kind=exc.kind, endpoint=exc.endpoint, details=exc.details)
                self._warn('the server refused SYNC (%s); a logical backup (SCAN + DUMP of every key) was written '
                           'instead' % exc.message)
                method_used = 'logical'
                if self.server is None:
                    self._facts(need=True)
        if result is None:
            result = self._logical()
        result.update(self._install(result))
        seconds = max(time.time() - started, 1e-6)
        if self.progress is not None:
            self.progress.update('done', done=result.get('keys') or 0, total=result.get('keys') or 0,
                                 bytes_done=result['content_size'], bytes_total=result['content_size'], force=True,
                                 busy=False)
        result.update(space=self.space, keep_first=self.keep_first)
        result.update(changed=True, method=self.method, method_used=method_used, dest=self.dest,
                      sidecar=self.dest + '.json', seconds=round(seconds, 3),
                      mb_per_second=round(result['content_size'] / seconds / 1e6, 1),
                      check_mode=False)
        return result

    def _plan(self, started):
        """Check mode: connect, read facts, say what would be written; write nothing."""
        self._facts(need=False)
        if self.of_cluster:
            return self.run_cluster(started)
        would = self.method
        reason = None
        if self.method == 'auto':
            perm = 'unknown'
            if self.server is not None:
                try:
                    perms, dummy = self.server.command_permissions()
                    perm = perms.get('sync', 'unknown')
                except KVError:
                    perm = 'unknown'
                finally:
                    self.server.client.close()
            would = 'logical' if perm == 'no' else 'sync'
            reason = 'the user may not run SYNC' if perm == 'no' else (
                'SYNC is permitted' if perm == 'yes' else 'SYNC will be tried; logical if the server refuses it')
        self._check_space()
        moves, removals = rotation_plan(self.dest, self.keep, self.keep_first)
        keys = sum(v['keys'] for v in self.server.keyspace().values()) if self.server else None
        return dict(changed=True, check_mode=True, dest=self.dest, space=self.space, keep_first=self.keep_first,
                    sidecar=self.dest + '.json', method=self.method,
                    method_used=would, method_reason=reason, encrypted=bool(self.passphrase),
                    format='rdb' if would == 'sync' else 'logical', engine=self.engine, version=self.version,
                    source_keys=keys, rotated=[dict(src=a, dest=b) for a, b in moves], removed=removals,
                    seconds=round(time.time() - started, 3))

    def _sync(self):
        stream = ReplicationStream(self.endpoint, self.version, self.capabilities)
        stream.open()
        out = None
        try:
            out = backup_output(self.dest, self.passphrase, 'rdb', self.mode)
            # Receive at network speed (magic, end opcode, size and sha256 checked on the way) and release
            # the server - a diskless transfer keeps its fork alive until the last byte is read - then
            # compute the CRC64 from the temp file.
            validator = RdbValidator('the RDB transfer from %s' % self.endpoint.address, crc=False)
            received = 0
            for data in stream.payload():
                validator.feed(data)
                out.write(data)
                received += len(data)
                self._tick(received)
            stream.close()
            facts = validator.finish()
            out.close()
            if facts['checksum'] == 'pending':
                validator.check_crc(facts, content_crc64(out.tmp, self.passphrase, facts['size'] - 8))
        except Exception:
            if out is not None:
                out.abort()
            raise
        finally:
            stream.close()
        self._out = out
        result = dict(format='rdb', transfer=stream.transfer, rdb_version=facts['rdb_version'], magic=facts['magic'],
                      crc64=facts['crc64'], checksum=facts['checksum'], engine=self.engine, version=self.version,
                      replconf=stream.replconf)
        result.update(out.facts())
        return result

    def _logical(self):
        server = self.server
        rdb_version, dummy = server.rdb_version()
        keyspace = server.refresh_keyspace()
        use_pexpiretime = server.capabilities['pexpiretime']
        header = dict(format=1, kind='kvtools.migration logical backup', engine=server.engine,
                      version=server.version_string, rdb_version=rdb_version, source=self.endpoint.address,
                      created=iso_time(time.time()), created_ms=now_ms(),
                      expiry='absolute unix time in ms (PEXPIRETIME)' if use_pexpiretime else
                      'absolute unix time in ms (read as PTTL, made absolute at read time)',
                      dbs=dict((str(db), v['keys']) for db, v in sorted(keyspace.items())))
        out = backup_output(self.dest, self.passphrase, 'logical', self.mode)
        self.keys_total = sum(v['keys'] for v in keyspace.values())
        self.keys_done = 0
        expired = 0
        try:
            writer = LogicalWriter(out, header)
            for db in sorted(keyspace):
                expired += self._dump_db(writer, db, use_pexpiretime)
            trailer = writer.finish(dict(expired=expired))
            out.close()
        except Exception as exc:
            out.abort()
            if isinstance(exc, KVError):
                raise
            raise self.endpoint.error(exc, 'logical backup')
        self._out = out
        result = dict(format='logical', transfer=None, rdb_version=rdb_version, engine=server.engine,
                      version=server.version_string, keys=trailer['keys'], expired=expired,
                      dbs=[db_result(int(db), keys=n, copied=n)
                           for db, n in sorted(trailer['dbs'].items(), key=lambda x: int(x[0]))],
                      checksum='sha256 trailer')
        result.update(out.facts())
        return result

    def _dump_db(self, writer, db, use_pexpiretime):
        """Write one db: SCAN, then DUMP + expiry pipelined in parts of bounded size (:mod:`._dumpread`)."""
        client = self.endpoint.client(db=db)
        wire = None
        expired = 0

        def fail(exc, action):
            return self.endpoint.error(exc, 'reading db %d' % db if action == 'reading' else
                                       '%s in db %d' % (action, db), db=db)
        try:
            wire = Wire(client)
            reader = DumpReader(wire, use_pexpiretime, fail, max_part=1000)
            writer.select(db)
            for dummy_cursor, keys in scan_batches(client, count=1000):
                for dummy_part, entries, size in reader.parts(keys):
                    items, gone, dummy = live_entries(entries, size=size)
                    expired += gone  # gone or expiring between SCAN and DUMP: not an error
                    writer.add([(key, payload, expire_at) for key, payload, expire_at, dummy_raw in items])
                    self.keys_done += len(entries)
                    self._tick(writer.out.content_size, self.keys_done)
        except KVError:
            raise
        except Exception as exc:
            raise self.endpoint.error(exc, 'reading db %d' % db, db=db)
        finally:
            if wire is not None:
                wire.close()
            client.close()
        return expired

    # -- install -----------------------------------------------------------------------------
    def _install(self, result):
        """Rotate older backups, move the new one into place, write the sidecar."""
        return install_backup(self._out, self.dest, self.keep, self.mode, result, self.endpoint.address,
                              keep_first=self.keep_first)


def install_backup(out, dest, keep, mode, result, source, extra=None, keep_first=False):
    """Rotate older backups (``keep``, ``keep_first``: :func:`~._backup_files.rotation_plan`), move the complete :class:`TempOutput` ``out`` to ``dest`` and
    write the sidecar ``dest.json`` from the facts in ``result`` (plus ``extra``).

    Shared by ``kv_rdb_backup`` and the snapshot backup of ``kv_sync``, so both write the same files.
    Returns ``{rotated, removed}``.
    """
    moves, removals = rotation_plan(dest, keep, keep_first)
    try:
        for path in removals:
            os.unlink(path)
        for src, dst in moves:
            os.rename(src, dst)
        out.commit(dest)
    except Exception:
        out.abort()
        raise
    sidecar = dict(sidecar_version=SIDECAR_VERSION, file=os.path.basename(dest), created=iso_time(time.time()),
                   source=source)
    for name in ('format', 'encrypted', 'size', 'sha256', 'content_size', 'content_sha256', 'rdb_version',
                 'engine', 'version', 'transfer', 'magic', 'crc64', 'checksum', 'keys', 'expired', 'dbs'):
        if name in result:
            sidecar[name] = result[name]
    sidecar['method'] = 'sync' if result['format'] == 'rdb' else 'logical'
    if result.get('encrypted'):
        sidecar['encryption'] = dict(cipher='AES-256-GCM', kdf='scrypt', format='KVTENC1')
    sidecar.update(extra or {})
    atomic_write(dest + '.json', json.dumps(sidecar, indent=2, sort_keys=True) + '\n', mode)
    return dict(rotated=[dict(src=a, dest=b) for a, b in moves], removed=removals)
