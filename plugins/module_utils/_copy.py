# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The client-side copy: SCAN + DUMP + expiry on the source, RESTORE on the target.

The flow of :meth:`DumpRestore.run`:

1. connect both sides and read their facts (engine, version, RDB version, capabilities);
2. decide the payload path per run: ``restore`` when the target accepts the source's payload
   version, ``commands`` (type-aware) when it cannot, ``restore`` with a per-key fallback when
   only RESTORE can tell (``payload: auto``);
3. plan: with ``on_conflict: fail`` every target db that is not empty is compared first and the
   run stops before its first write if any key differs; check mode plans every db and stops;
4. copy each db in SCAN batches (pipelined, optionally by several workers), checkpointing the
   SCAN cursor after each batch so an interrupted run resumes where it stopped.

The source only ever sees SCAN, DUMP, PEXPIRETIME/PTTL, TYPE and read commands.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json
import os
import threading
import time

try:
    from redis import exceptions as rexc
except ImportError:  # pragma: no cover
    rexc = None

from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError, reply_kind
from ansible_collections.kvtools.migration.plugins.module_utils._files import atomic_write
from ansible_collections.kvtools.migration.plugins.module_utils._pair import pair_problems, raise_first
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import (
    add_counts, db_result, process_batches, sample_key, scan_batches, select_dbs, totals)
from ansible_collections.kvtools.migration.plugins.module_utils._payload import payload_body, target_accepts
from ansible_collections.kvtools.migration.plugins.module_utils._server import connect_server
from ansible_collections.kvtools.migration.plugins.module_utils._text import now_ms
from ansible_collections.kvtools.migration.plugins.module_utils._typed import (
    TypedCopier, UncopyableKey, values_equal)
from ansible_collections.kvtools.migration.plugins.module_utils._wire import (
    ReplyError, Wire, pack_key_commands, pack_restores)

MAX_FAILURES_LISTED = 100
TTL_TOLERANCE_MS = 1000
BATCH_BYTES = 16 * 1024 * 1024     # payload bytes one worker holds at a time (memory bound)
FIRST_CHUNK = 64                   # keys read before the average payload size is known
CHECKPOINT_FORMAT = 1


def _is_connection_error(exc):
    return isinstance(exc, (OSError, rexc.ConnectionError, rexc.TimeoutError)) if rexc else isinstance(exc, OSError)




class CopyOptions:
    """The options of kv_dump_restore, with their defaults."""

    def __init__(self, dbs=None, db_map=None, match=None, on_conflict='fail', payload='auto', batch_size=1000,
                 workers=3, checkpoint=None, report=None, chunk_size=1000, check_mode=False, progress=None):
        self.dbs = dbs
        self.db_map = db_map
        self.match = match
        self.on_conflict = on_conflict
        self.payload = payload
        self.batch_size = max(1, int(batch_size))
        self.workers = max(1, int(workers))
        self.checkpoint = checkpoint
        self.report = report
        self.chunk_size = max(1, int(chunk_size))
        self.check_mode = check_mode
        self.progress = progress
        if on_conflict not in ('fail', 'skip', 'replace'):
            raise KVError('on_conflict must be fail, skip or replace', kind='config')
        if payload not in ('auto', 'restore', 'commands'):
            raise KVError('payload must be auto, restore or commands', kind='config')


class _DbState:
    """Counters and failures of one db, shared by its workers."""

    def __init__(self, src_db, tgt_db, path, on_change=None):
        self.result = db_result(src_db, tgt_db, payload_path=path)
        self.failures = []
        self.lock = threading.Lock()
        self.on_change = on_change

    def add(self, counts, failures=()):
        with self.lock:
            add_counts(self.result, counts)
            room = MAX_FAILURES_LISTED - len(self.failures)
            if room > 0:
                self.failures.extend(list(failures)[:room])
        if self.on_change:
            self.on_change()


class Progress:
    """A small JSON file, rewritten atomically at most every ``interval`` seconds, that says how far a
    copy has got: per db the source keys (from INFO keyspace at the start) and the keys done, with the
    overall rate and the time left.  Roles poll it to show progress of a long copy."""

    FORMAT = 1

    def __init__(self, path, totals, interval=1.0):
        self.path = path
        self.totals = totals
        self.interval = interval
        self.started = time.time()
        self.last = 0.0
        self.lock = threading.Lock()

    def update(self, states, phase, force=False):
        now = time.time()
        if not force and now - self.last < self.interval:
            return
        with self.lock:
            if not force and now - self.last < self.interval:
                return
            self.last = now
            dbs = []
            for state in states:
                entry = state.result
                dbs.append(dict(db=entry['db'], target_db=entry['target_db'],
                                total=self.totals.get(entry['db'], 0), done=entry['keys'],
                                copied=entry['copied'], identical=entry['identical'], expired=entry['expired'],
                                failed=entry['failed']))
            done = sum(d['done'] for d in dbs)
            total = max(sum(d['total'] for d in dbs), done)
            elapsed = max(now - self.started, 1e-6)
            rate = done / elapsed
            eta = round((total - done) / rate, 1) if rate > 0 and phase == 'copying' else None
            data = dict(format=self.FORMAT, phase=phase, pid=os.getpid(), started=round(self.started, 3),
                        updated=round(now, 3), elapsed=round(elapsed, 1), done=done, total=total,
                        percent=round(100.0 * done / total, 1) if total else 100.0,
                        keys_per_second=round(rate, 1), eta_seconds=eta, dbs=dbs)
            atomic_write(self.path, json.dumps(data, sort_keys=True))


class DumpRestore:
    """One kv_dump_restore run.  ``run()`` returns the result dict or raises KVError (with
    ``.partial`` holding the counts reached)."""

    name = 'kv_dump_restore'

    def __init__(self, source, target, options, warn=None):
        self.source_ep = source
        self.target_ep = target
        self.opts = options
        self.warn = warn or (lambda msg: None)
        self.warnings = []

    # -- set-up --------------------------------------------------------------------------------
    def _connect(self):
        self.src = connect_server(self.source_ep)
        self.tgt = connect_server(self.target_ep)
        raise_first(pair_problems(self.source_ep, self.target_ep, self.src, self.tgt, tool=self.name))
        self.src_pexpiretime = self.src.capabilities['pexpiretime']
        self.src_rdb, self.src_rdb_source = self.src.rdb_version()
        self.tgt_rdb, self.tgt_rdb_source = self.tgt.rdb_version()
        check = self.tgt.rdb_version_check.get('value')
        self.accepts = target_accepts(self.tgt.engine, self.tgt_rdb, self.src_rdb, check)

    def _payload_path(self):
        want = self.opts.payload
        if want == 'commands':
            return 'commands'
        if want == 'restore':
            if self.accepts is False:
                raise KVError(
                    'the target %s (%s %s, RDB %s, rdb-version-check %s) refuses DUMP payloads of RDB version %s '
                    'from the source %s (%s %s): RESTORE cannot work. Use payload=auto or payload=commands'
                    % (self.target_ep.address, self.tgt.engine, self.tgt.version_string, self.tgt_rdb,
                       self.tgt.rdb_version_check.get('value'), self.src_rdb, self.source_ep.address,
                       self.src.engine, self.src.version_string), kind='payload')
            return 'restore'
        if self.accepts is False:
            return 'commands'
        return 'restore' if self.accepts else 'restore+fallback'

    def _describe(self, server, rdb, rdb_source):
        return dict(address=server.endpoint.address, engine=server.engine, version=server.version_string,
                    rdb_version=rdb, rdb_version_source=rdb_source, tls=server.endpoint.tls)

    # -- checkpoint ----------------------------------------------------------------------------
    def _fingerprint(self, pairs):
        raw = json.dumps(dict(source=self.source_ep.address, target=self.target_ep.address, pairs=pairs,
                              match=self.opts.match), sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def _load_checkpoint(self, pairs):
        path = self.opts.checkpoint
        if not path or not os.path.exists(path):
            return None
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (IOError, OSError, ValueError) as exc:
            raise KVError('cannot read checkpoint %s: %s. Remove it to start over' % (path, exc), kind='config')
        if data.get('format') != CHECKPOINT_FORMAT or data.get('fingerprint') != self._fingerprint(pairs):
            raise KVError('checkpoint %s belongs to another job (different source, target, dbs or match). '
                          'Remove it or give another checkpoint path' % path, kind='config')
        return data

    def _save_checkpoint(self):
        if not self.opts.checkpoint or self.opts.check_mode:
            return
        with self._ckpt_lock:
            atomic_write(self.opts.checkpoint, json.dumps(self._ckpt, sort_keys=True))

    # -- the run -------------------------------------------------------------------------------
    def run(self):
        started = time.time()
        self._connect()
        path = self._payload_path()
        pairs = select_dbs(self.src.keyspace(), self.opts.dbs, self.opts.db_map)
        raise_first(pair_problems(self.source_ep, self.target_ep, None, self.tgt, pairs, tool=self.name))
        self.progress = None
        if self.opts.progress and not self.opts.check_mode:
            keyspace = self.src.keyspace()
            self.progress = Progress(self.opts.progress, dict((s, keyspace.get(s, {}).get('keys', 0)) for s, _t in pairs))
        self.phase = 'planning'
        self.states = [_DbState(s, t, path, on_change=self._tick) for s, t in pairs]
        self._check_room()
        self._ckpt_lock = threading.Lock()
        previous = self._load_checkpoint(pairs)
        tgt_run_id = self.tgt.info.get('run_id')
        tgt_run_id = tgt_run_id.decode() if isinstance(tgt_run_id, bytes) else tgt_run_id
        resumed = False
        self._ckpt = dict(format=CHECKPOINT_FORMAT, fingerprint=self._fingerprint(pairs), target_run_id=tgt_run_id,
                          dbs={})
        if previous:
            resumed = True
            if previous.get('target_run_id') != tgt_run_id:
                msg = ('the target restarted since the checkpoint was written: every db is checked again from the '
                       'start (keys already there and identical are not copied again)')
                self._warn(msg)
                previous_dbs = dict((k, dict(cursor=0, done=False, recheck=True)) for k in previous['dbs'])
            else:
                previous_dbs = previous['dbs']
            self._ckpt['dbs'] = previous_dbs
        self.before = {}
        partial = dict(changed=False)
        try:
            # Plan first: conflicts stop the run before the first write (and check mode ends here).
            plan_all = self.opts.check_mode
            for state in self.states:
                s_db, t_db = state.result['db'], state.result['target_db']
                self.before[t_db] = self._dbsize(t_db)
                state.target_empty = self.before[t_db] == 0
                need_plan = plan_all or (self.opts.on_conflict == 'fail' and not state.target_empty)
                if need_plan:
                    self._copy_db(state, plan=True)
                    state.planned = True
            self._stop_on_conflicts(started, resumed, 'the source')
            if not self.opts.check_mode:
                self.phase = 'copying'
                for state in self.states:
                    key = str(state.result['db'])
                    done = self._ckpt['dbs'].get(key, {})
                    if done.get('done'):
                        continue
                    if getattr(state, 'planned', False) and not state.result['copied'] and not done:
                        continue  # the plan found nothing to write: its counts are the result
                    if state.result['keys'] or state.failures:  # drop the plan's counts
                        state.result = db_result(state.result['db'], state.result['target_db'], payload_path=path)
                        state.failures = []
                    self._copy_db(state, plan=False, cursor=done.get('cursor', 0),
                                  recheck=done.get('recheck', False))
        except Exception as exc:  # every failure leaves a report and the counts reached
            raise self._failed(exc, started, resumed, 'copying')
        self._tick('done')
        result = self._result(started, resumed)
        if self.opts.checkpoint and not self.opts.check_mode and os.path.exists(self.opts.checkpoint):
            os.unlink(self.opts.checkpoint)  # the job is complete: a rerun starts a fresh idempotent pass
        self._write_report(result)
        return result

    def _stop_on_conflicts(self, started, resumed, what):
        """After planning: with on_conflict=fail, differing target keys stop the run before any write."""
        conflicted = [st.result for st in self.states if st.result['conflicts']]
        if conflicted and self.opts.on_conflict == 'fail' and not self.opts.check_mode:
            err = KVError('the target already holds keys that differ from %s: %s. Nothing was written. '
                          'Use on_conflict=replace to overwrite them, on_conflict=skip to keep them, or empty '
                          'the target' % (what, ', '.join('db %d: %d' % (r['target_db'], r['conflicts'])
                                                          for r in conflicted)),
                          kind='conflict', endpoint=self.target_ep.address,
                          details=dict(samples=[f for st in self.states for f in st.failures][:20]))
            err.partial = self._result(started, resumed, partial=True)
            raise err

    def _failed(self, exc, started, resumed, action):
        """The KVError to raise for ``exc``, with the counts reached; the report and progress say so."""
        err = exc if isinstance(exc, KVError) else self.target_ep.error(exc, action)
        if not hasattr(err, 'partial'):
            err.partial = self._result(started, resumed, partial=True)
        self._write_report(err.partial)
        self._tick('failed')
        return err

    def _tick(self, final=None):
        if self.progress is not None:
            self.progress.update(self.states, final or self.phase, force=final is not None)

    def _check_room(self):
        """Warn early when the target's maxmemory looks too small for the source's data."""
        tgt_mem, src_mem = self.tgt.memory, self.src.memory
        if not tgt_mem['maxmemory']:
            return
        room = tgt_mem['maxmemory'] - tgt_mem['used_memory']
        need = src_mem['used_memory'] - int(self.src.info.get('used_memory_startup', 0) or 0)
        if need > room:
            self._warn('the target %s may be too small: the source holds about %d MiB of data, the target has about '
                       '%d MiB left under maxmemory (%s). The copy stops with an out-of-memory error when it is full'
                       % (self.target_ep.address, need // 2 ** 20, max(room, 0) // 2 ** 20,
                          tgt_mem['maxmemory_policy']))

    def _warn(self, msg):
        self.warnings.append(msg)
        self.warn(msg)

    def _dbsize(self, db):
        client = self.target_ep.client(db=db)
        try:
            return int(client.dbsize())
        except Exception as exc:
            raise self.target_ep.error(exc, 'DBSIZE', db=db)
        finally:
            client.close()

    def _result(self, started, resumed, partial=False):
        dbs = [st.result for st in self.states] if hasattr(self, 'states') else []
        total = totals(dbs)
        seconds = max(time.time() - started, 1e-6)
        failures = []
        for st in getattr(self, 'states', []):
            failures.extend(st.failures)
        result = dict(
            changed=total['copied'] > 0,
            dbs=dbs,
            totals=total,
            failures=failures[:MAX_FAILURES_LISTED],
            bytes=total['bytes'],
            seconds=round(seconds, 3),
            keys_per_second=round(total['keys'] / seconds, 1),
            resumed=resumed,
            check_mode=self.opts.check_mode,
            on_conflict=self.opts.on_conflict,
            warnings_list=list(self.warnings),
        )
        if hasattr(self, 'src'):
            result['source'] = self._describe(self.src, self.src_rdb, self.src_rdb_source)
            result['target'] = self._describe(self.tgt, self.tgt_rdb, self.tgt_rdb_source)
            result['payload_path'] = self._payload_path() if not partial else (dbs[0]['payload_path'] if dbs else None)
        result['target_keys_before'] = dict((str(k), v) for k, v in getattr(self, 'before', {}).items())
        return result

    def _write_report(self, result):
        if self.opts.report and not self.opts.check_mode:
            atomic_write(self.opts.report, json.dumps(result, indent=2, sort_keys=True))

    # -- one db ----------------------------------------------------------------------------------
    def _copy_db(self, state, plan, cursor=0, recheck=False):
        s_db, t_db = state.result['db'], state.result['target_db']
        src_client = self.source_ep.client(db=s_db)
        workers = 1 if plan else self.opts.workers
        ctx = dict(plan=plan, check_existing=plan or recheck or not state.target_empty, state=state)
        key = str(s_db)
        seq_lock = threading.Lock()
        progress = dict(next_seq=0, done=set(), cursors={})

        def committed(seq, cursor_after):
            # Advance the checkpoint to the end of the longest run of finished batches.
            if plan:
                return
            with seq_lock:
                progress['done'].add(seq)
                progress['cursors'][seq] = cursor_after
                advanced = False
                while progress['next_seq'] in progress['done']:
                    progress['done'].discard(progress['next_seq'])
                    cur = progress['cursors'].pop(progress['next_seq'])
                    progress['next_seq'] += 1
                    advanced = True
                if advanced:
                    self._ckpt['dbs'][key] = dict(cursor=cur, done=(cur == 0), recheck=recheck)
                    self._save_checkpoint()

        batches = scan_batches(src_client, match=self.opts.match, count=self.opts.batch_size, cursor=cursor)

        def handle(worker, job):
            seq, (cursor_after, keys) = job
            worker.process(keys)
            committed(seq, cursor_after)

        try:
            process_batches(enumerate(batches), workers, lambda: self.worker_class(self, s_db, t_db, ctx), handle)
        except Exception as exc:
            if isinstance(exc, KVError):
                raise
            raise self.source_ep.error(exc, 'scanning db %d' % s_db, db=s_db)
        finally:
            src_client.close()


class _Worker:
    """Processes SCAN batches of one db with its own source and target connections."""

    def __init__(self, run, s_db, t_db, ctx):
        self.run = run
        self.s_db = s_db
        self.t_db = t_db
        self.plan = ctx['plan']
        self.check_existing = ctx['check_existing']
        self.state = ctx['state']
        self.path = self.state.result['payload_path']
        self.on_conflict = run.opts.on_conflict
        self.src_client = run.source_ep.client(db=s_db)
        self.tgt_client = run.target_ep.client(db=t_db)
        self.src = Wire(self.src_client)
        self.tgt = Wire(self.tgt_client)
        self.typed = TypedCopier(self.src_client, self.tgt_client, run.src, run.tgt, run.opts.chunk_size)
        self.expiry_cmd = b'PEXPIRETIME' if run.src_pexpiretime else b'PTTL'
        self.tgt_expiry_cmd = b'PEXPIRETIME' if run.tgt.capabilities['pexpiretime'] else b'PTTL'
        self.chunk = min(FIRST_CHUNK, run.opts.batch_size)
        self.max_chunk = run.opts.batch_size

    def close(self):
        for wire in (self.src, self.tgt):
            wire.close()
        for client in (self.src_client, self.tgt_client):
            client.close()

    def process(self, keys):
        """Copy one SCAN batch.  The source read of the next part is sent before the current
        part is written, so source and target work at the same time."""
        position = [0]

        def send_next():
            start = position[0]
            if start >= len(keys):
                return None
            part = keys[start:start + self.chunk]
            position[0] = start + len(part)
            self._send_read(part)
            return part

        pending = send_next()
        while pending is not None:
            items, expired, size = self._recv_read(pending)
            # keep the bytes held per step near BATCH_BYTES, whatever the value sizes are
            avg = max(1, size // max(1, len(pending)))
            self.chunk = max(1, min(self.max_chunk, BATCH_BYTES // avg))
            following = send_next()
            self._handle_part(pending, items, expired, size)
            pending = following

    # -- steps ---------------------------------------------------------------------------------
    def _fail(self, exc, side, action):
        ep = self.run.source_ep if side == 'source' else self.run.target_ep
        return ep.error(exc, action, db=self.s_db if side == 'source' else self.t_db)

    def _send_read(self, keys):
        try:
            self.src.send(pack_key_commands((b'DUMP', self.expiry_cmd), keys), packed=True)
        except Exception as exc:
            raise self._fail(exc, 'source', 'reading db %d' % self.s_db)

    def _recv_read(self, keys):
        """Replies to :meth:`_send_read` -> (items, expired count, payload bytes).

        An item is ``(key, payload, expire_at_ms or None, raw expiry reply)``.
        """
        try:
            replies = self.src.recv(2 * len(keys))
        except Exception as exc:
            raise self._fail(exc, 'source', 'reading db %d' % self.s_db)
        errors = [r for r in replies if r.__class__ is ReplyError]
        if errors:
            raise self._fail(errors[0], 'source', 'DUMP in db %d' % self.s_db)
        dumps = replies[0::2]
        exps = replies[1::2]
        now = now_ms()
        if self.expiry_cmd == b'PEXPIRETIME':
            items = [(k, p, None if e == -1 else e, e) for k, p, e in zip(keys, dumps, exps)]
        else:
            items = [(k, p, None if e == -1 else now + e, e) for k, p, e in zip(keys, dumps, exps)]
        if None in dumps or -2 in exps or any(it[2] is not None and it[2] <= now for it in items):
            # gone since SCAN, or expiring right now: counted as expired, never as failed
            kept = [it for it in items if it[1] is not None and it[3] != -2
                    and (it[2] is None or it[2] > now)]
            expired = len(items) - len(kept)
            items = kept
        else:
            expired = 0
        size = sum(len(it[1]) for it in items) if expired else sum(map(len, dumps))
        return items, expired, size

    def _target_state(self, items):
        """For each item: None (absent) or (payload, expire_at) of the target's key."""
        keys = [item[0] for item in items]
        try:
            replies = self.tgt.call_packed(pack_key_commands((b'DUMP', self.tgt_expiry_cmd), keys), 2 * len(keys))
        except Exception as exc:
            raise self._fail(exc, 'target', 'reading db %d' % self.t_db)
        now = now_ms()
        out = []
        for n in range(len(items)):
            payload, exp = replies[2 * n], replies[2 * n + 1]
            for reply in (payload, exp):
                if isinstance(reply, ReplyError):
                    raise self._fail(reply, 'target', 'DUMP in db %d' % self.t_db)
            if payload is None:
                out.append(None)
                continue
            if exp in (-1, -2):
                exp_at = None
            elif self.tgt_expiry_cmd == b'PEXPIRETIME':
                exp_at = int(exp)
            else:
                exp_at = now + int(exp)
            out.append((payload, exp_at))
        return out

    def _same(self, item, existing):
        key, payload, expire_at, _raw = item
        t_payload, t_exp = existing
        if (expire_at is None) != (t_exp is None):
            return False
        if expire_at is not None and abs(expire_at - t_exp) > TTL_TOLERANCE_MS:
            return False
        if payload_body(payload) == payload_body(t_payload):  # same serialized value, whatever the RDB version footer
            return True
        try:
            return values_equal(self.typed.src, self.typed.tgt, key)
        except Exception as exc:
            raise self._fail(exc, 'target', 'comparing a key in db %d' % self.t_db)

    def _handle_part(self, keys, items, expired, size):
        counts = dict(keys=len(keys))
        failures = []
        counts['expired'] = expired
        counts['bytes'] = size
        replace_keys = set()
        if self.check_existing and items:
            states = self._target_state(items)
            todo = []
            for item, existing in zip(items, states):
                if existing is None:
                    todo.append(item)
                    continue
                if self._same(item, existing):
                    counts['identical'] = counts.get('identical', 0) + 1
                    continue
                counts['conflicts'] = counts.get('conflicts', 0) + 1
                if self.on_conflict == 'replace':
                    replace_keys.add(item[0])
                    todo.append(item)
                else:
                    if self.on_conflict == 'skip':
                        counts['skipped'] = counts.get('skipped', 0) + 1
                    failures.append(dict(db=self.s_db, key=sample_key(item[0]), reason='conflict'))
            items = todo
        if self.plan:
            self._plan_writes(items, replace_keys)
            counts['copied'] = len(items)
            counts['replaced'] = len(replace_keys)
            if self.path == 'commands':
                counts['fallback'] = len(items)
            self.state.add(counts, failures)
            return size
        try:
            if self.path == 'commands':
                self._copy_typed(items, replace_keys, counts, failures)
            else:
                self._restore(items, replace_keys, counts, failures)
        finally:
            self.state.add(counts, failures)
        return size

    def _plan_writes(self, items, replace_keys):
        """Check mode: called with what a real run would write (subclasses count their calls)."""

    def _restore(self, items, replace_keys, counts, failures):
        if not items:
            return
        absolute = self.expiry_cmd == b'PEXPIRETIME'
        try:
            replies = self.tgt.call_packed(pack_restores(items, absolute, replace_keys), len(items))
        except Exception as exc:
            raise self._fail(exc, 'target', 'RESTORE into db %d' % self.t_db)
        if replies.count(b'OK') == len(replies):  # the usual case: every key written
            counts['copied'] = counts.get('copied', 0) + len(replies)
            if replace_keys:
                counts['replaced'] = counts.get('replaced', 0) + sum(1 for it in items if it[0] in replace_keys)
            return
        fallback = []
        busy = []
        fatal = None
        for item, reply in zip(items, replies):
            if not isinstance(reply, ReplyError):
                counts['copied'] = counts.get('copied', 0) + 1
                if item[0] in replace_keys:
                    counts['replaced'] = counts.get('replaced', 0) + 1
                continue
            kind = reply_kind(reply)
            if kind == 'busykey':
                busy.append(item)
            elif kind == 'payload' and self.run.opts.payload == 'auto':
                fallback.append(item)
            elif kind in ('oom', 'noperm', 'auth', 'readonly', 'loading'):
                counts['failed'] = counts.get('failed', 0) + 1
                fatal = fatal or reply
            else:
                counts['failed'] = counts.get('failed', 0) + 1
                failures.append(dict(db=self.s_db, key=sample_key(item[0]), reason=str(reply)[:200]))
        if fatal is not None:
            raise self._fail(fatal, 'target', 'RESTORE into db %d' % self.t_db)
        if busy:
            self._resolve_busy(busy, counts, failures)
        if fallback:
            self._copy_typed(fallback, replace_keys, counts, failures)

    def _resolve_busy(self, items, counts, failures):
        """Keys that appeared on the target after planning (SCAN duplicates, concurrent writers)."""
        states = self._target_state(items)
        retry = []
        for item, existing in zip(items, states):
            if existing is not None and self._same(item, existing):
                counts['identical'] = counts.get('identical', 0) + 1
                continue
            counts['conflicts'] = counts.get('conflicts', 0) + 1
            if self.on_conflict == 'replace':
                retry.append(item)
            else:
                if self.on_conflict == 'skip':
                    counts['skipped'] = counts.get('skipped', 0) + 1
                else:
                    counts['failed'] = counts.get('failed', 0) + 1
                failures.append(dict(db=self.s_db, key=sample_key(item[0]), reason='conflict'))
        if retry:
            self._restore(retry, set(i[0] for i in retry), counts, failures)

    def _copy_typed(self, items, replace_keys, counts, failures):
        for key, _payload, expire_at, _raw in items:
            replace = key in replace_keys
            try:
                status, note = self.typed.copy(key, expire_at, replace)
            except UncopyableKey as exc:
                counts['failed'] = counts.get('failed', 0) + 1
                failures.append(dict(db=self.s_db, key=sample_key(key), reason=str(exc)))
                continue
            except Exception as exc:
                kind = reply_kind(exc)
                if kind in ('oom', 'noperm', 'auth', 'readonly', 'loading') or _is_connection_error(exc):
                    raise self._fail(exc, 'target', 'copying a key with commands into db %d' % self.t_db)
                counts['failed'] = counts.get('failed', 0) + 1
                failures.append(dict(db=self.s_db, key=sample_key(key), reason=str(exc)[:200]))
                continue
            if status == 'copied':
                counts['copied'] = counts.get('copied', 0) + 1
                counts['fallback'] = counts.get('fallback', 0) + 1
                if replace:
                    counts['replaced'] = counts.get('replaced', 0) + 1
                if note:
                    failures.append(dict(db=self.s_db, key=sample_key(key), reason=note, copied=True))
            elif status == 'expired':
                counts['expired'] = counts.get('expired', 0) + 1
            else:  # busykey
                self._resolve_busy([(key, _payload, expire_at, _raw)], counts, failures)


DumpRestore.worker_class = _Worker
