"""kv_sync into a cluster target while the target is resharded: the follower follows ``MOVED``, ``ASK`` and
``TRYAGAIN`` (``_sync_cluster_apply``), in the snapshot and in the stream, and the result is exact.

Real servers only: a standalone Redis 7.0 source, a 3-master Valkey 9.1 cluster target of the test's own (its
slots move).  Slots are moved the way a resharder does (``CLUSTER SETSLOT IMPORTING``/``MIGRATING``, ``MIGRATE``
of the keys, ``SETSLOT NODE`` on every node).  A writer writes to the source all along, many of its writes to keys
of the slots that move (single-key writes, ``MSET`` and transactions within one slot, deletes, TTLs).  Each
redirection kind is made certain by the order of the steps, never by timing: a slot half-way in a move while the
snapshot is restored (``ASK``; one of its keys big enough to be spooled by the snapshot parser), then finished
(``MOVED`` for the next writes: the follower still routes to the old owner), a slot half-way in a move while the
stream writes to keys already moved (``ASK``), keys of one command split between two masters (``TRYAGAIN``), and
slots moved by a thread while the writer writes (whatever comes).  After ``state: stopped`` the target equals the
source by tests/support/compare.py, never kv_verify.
"""

import threading
import time

from ansible_collections.kvtools.migration.plugins.module_utils._rdb_snapshot import BIG_THRESHOLD
from ansible_collections.kvtools.migration.plugins.module_utils._sync_follow import read_record
# followed: the fixture of test_sync_cluster (removes the followers at the end), used here by its name
from tests.integration.test_sync_cluster import (  # noqa: F401 pylint: disable=unused-import
    engine, followed, make_fast, pause, unpause)
from tests.support import compare
from tests.support import servers
from tests.support.cluster import key_slot

TAGS = (b'snap', b'half', b'busy1', b'busy2')
PER_SLOT = 300


def node_id(node):
    return node.admin().execute_command('CLUSTER', 'MYID')


def migrating(target, slot, here, there):
    """The first steps of a move: ``there`` imports ``slot``, ``here`` migrates it (no key moved yet)."""
    there.admin().execute_command('CLUSTER', 'SETSLOT', slot, 'IMPORTING', node_id(here))
    here.admin().execute_command('CLUSTER', 'SETSLOT', slot, 'MIGRATING', node_id(there))


def migrate_keys(slot, here, there, limit=None, batch=20):
    """``MIGRATE`` the keys of ``slot`` from ``here`` to ``there`` (at most ``limit``); how many moved."""
    moved = 0
    while limit is None or moved < limit:
        keys = here.admin().execute_command('CLUSTER', 'GETKEYSINSLOT', slot, batch if limit is None
                                            else min(batch, limit - moved))
        if not keys:
            break
        here.admin().execute_command('MIGRATE', '127.0.0.1', there.port, '', 0, 5000, 'AUTH2', 'admin',
                                     servers.PASSWORDS['admin'], 'KEYS', *keys)
        moved += len(keys)
    return moved


def finish_move(target, slot, there):
    for node in target.nodes:
        node.admin().execute_command('CLUSTER', 'SETSLOT', slot, 'NODE', node_id(there))
    target.wait_ok()


class SlotWriter(threading.Thread):
    """Writes to the source: single-key writes to every key of the tagged slots, round after round; with
    ``multi`` also ``MSET`` and ``MULTI``/``EXEC`` on two keys of one slot (``TRYAGAIN`` while split)."""

    def __init__(self, client, tags):
        super().__init__(daemon=True)
        self.c = client
        self.tags = tags
        self.multi = True
        self.stop = False
        self.rounds = 0
        self.error = None

    def run(self):
        c = self.c
        i = 0
        try:
            while not self.stop:
                pipe = c.pipeline(transaction=False)
                for tag in self.tags:
                    for n in range(i % 3, PER_SLOT, 3):  # a third of the slot's keys per round
                        key = b'{%s}:%d' % (tag, n)
                        if n % 17 == 0:
                            pipe.delete(key)
                        elif n % 5 == 0:
                            pipe.set(key, b'%d' % i, ex=900 + i)
                        else:
                            pipe.append(key, b'.%d' % i)  # the value depends on the order of the writes
                pipe.execute()
                if self.multi:
                    for tag in self.tags:
                        c.mset({b'{%s}:m%d' % (tag, i % 7): b'%d' % i, b'{%s}:%d' % (tag, (i * 7) % PER_SLOT): b'x%d' % i})
                        tx = c.pipeline(transaction=True)
                        tx.incr(b'{%s}:count' % tag)
                        tx.rpush(b'{%s}:list' % tag, i)
                        tx.append(b'{%s}:%d' % (tag, (i * 11) % PER_SLOT), b'+')
                        tx.execute()
                i += 1
                self.rounds = i
                time.sleep(0.005)  # a busy app, not a flood: the follower keeps up on a loaded machine too
        except Exception as exc:  # reported by the test
            self.error = exc

    def wait(self, rounds, timeout=120):
        goal = self.rounds + rounds
        deadline = time.time() + timeout
        while self.rounds < goal and self.error is None and time.time() < deadline:
            time.sleep(0.01)
        assert self.error is None, self.error
        assert self.rounds >= goal, 'the writer did not write'


def wait_applied(source, args, timeout=120):
    """Until the follower has applied (and the target answered) everything the source had written when called."""
    goal = int(source.admin().info('replication')['master_repl_offset'])
    deadline = time.time() + timeout
    rec = {}
    while time.time() < deadline:
        rec = read_record(args['record']) or {}
        assert rec.get('phase') != 'failed', rec.get('last_error')
        if rec.get('offset') is not None and rec['offset'] >= goal:
            return rec
        time.sleep(0.02)
    raise AssertionError('the follower did not apply offset %d: %s' % (goal, rec))


def test_follow_through_a_reshard_of_the_target(server_factory, cluster_factory, followed):  # noqa: F811
    """Standalone Redis 7.0 -> a 3-master Valkey 9.1 cluster resharded while followed: the target equals the source
    after the drain, and the redirections are counted (snapshot ASK, stream MOVED and ASK, a thread's moves)."""
    target = cluster_factory('valkey91')
    redis70 = server_factory('redis70')  # its own: the test reconfigures it (make_fast)
    source = make_fast(redis70) or redis70.admin()
    slots = dict((tag, key_slot(b'{%s}' % tag)) for tag in TAGS)
    assert len(set(slots.values())) == len(TAGS)
    owners = dict((tag, target.node_for_slot(slot)) for tag, slot in slots.items())
    others = dict((tag, next(n for n in target.nodes if n is not owners[tag])) for tag in TAGS)
    pipe = source.pipeline(transaction=False)
    for tag in TAGS:
        for n in range(PER_SLOT):
            pipe.set(b'{%s}:%d' % (tag, n), b'v%d' % n, ex=3600 if n % 10 == 0 else None)
    for n in range(2000):
        pipe.set(b'other:%d' % n, b'o')
    pipe.execute()
    # bigger than the snapshot parser's threshold: spooled to a file, sent again from it after ASK
    source.set(b'{snap}:big', bytes(bytearray(range(256))) * (BIG_THRESHOLD // 256 + 4096))

    # 1. the slot of {snap} is migrating (no key on the target yet): each of its snapshot RESTOREs is answered ASK
    migrating(target, slots[b'snap'], owners[b'snap'], others[b'snap'])
    args = followed(redis70, target, drain_timeout=120)
    writer = SlotWriter(source, TAGS)
    errors = []
    thread = None
    try:
        started = engine(args)
        assert not started.get('failed'), started.get('msg')
        assert started['phase'] == 'streaming'
        assert started['redirects']['ask'] >= PER_SLOT + 1, started['redirects']
        assert not owners[b'snap'].admin().execute_command('CLUSTER', 'COUNTKEYSINSLOT', slots[b'snap'])
        # 2. the move ends; the follower still routes the slot to the old owner: the next writes are answered MOVED
        finish_move(target, slots[b'snap'], others[b'snap'])
        writer.start()
        writer.wait(3)
        rec = wait_applied(redis70, args)
        assert rec['redirects']['moved'] >= 1, rec['redirects']

        # 3. the slot of {half} half-way in a move while the stream writes to keys already moved: ASK (single-key
        # writes only: a multi-key write on keys split between two nodes waits for the move to end, TRYAGAIN)
        writer.multi = False
        writer.wait(1)
        asked = wait_applied(redis70, args)['redirects']['ask']  # the last multi-key writes are applied
        migrating(target, slots[b'half'], owners[b'half'], others[b'half'])
        assert migrate_keys(slots[b'half'], owners[b'half'], others[b'half'], limit=PER_SLOT // 2) > 0
        writer.wait(3)
        rec = wait_applied(redis70, args)
        assert rec['redirects']['ask'] > asked, rec['redirects']
        migrate_keys(slots[b'half'], owners[b'half'], others[b'half'])
        finish_move(target, slots[b'half'], others[b'half'])
        writer.multi = True

        # 4. slots moved by a thread while every kind of write goes on (MSET and transactions: TRYAGAIN too)
        def reshard():
            try:
                for tag in (b'busy1', b'busy2', b'snap'):
                    here = target.node_for_slot(slots[tag])
                    there = next(n for n in target.nodes if n is not here)
                    target.move_slot(slots[tag], here, there, batch=10)
                    target.wait_ok()
            except Exception as exc:  # reported by the test
                errors.append(exc)

        thread = threading.Thread(target=reshard)
        thread.start()
        while thread.is_alive():
            writer.wait(1)
            time.sleep(0.05)
        thread.join()
        assert not errors, errors
        writer.wait(3)
        writer.stop = True  # ended before the pause: a write blocked by it would land after the comparison
        writer.join(60)
        assert writer.error is None and not writer.is_alive(), writer.error
        pause(redis70)
        stopped = engine(dict(args, state='stopped'))
        assert not stopped.get('failed'), stopped.get('msg')
        assert stopped['phase'] == 'stopped' and stopped['full_resyncs'] == 0
    finally:
        writer.stop = True
        if thread is not None:
            thread.join(60)
        unpause(redis70)
    redirects = stopped['redirects']
    assert redirects['moved'] >= 2 and redirects['ask'] > PER_SLOT, redirects
    for tag in TAGS:  # every key of a moved slot is on its new owner, none left behind
        owner = target.node_for_slot(slots[tag])
        assert owner is not owners[tag] or tag in (b'snap',), tag
        for node in target.nodes:
            if node is not owner:
                assert not node.admin().execute_command('CLUSTER', 'COUNTKEYSINSLOT', slots[tag]), (tag, node)
    assert compare.differences(source, [n.admin() for n in target.nodes], deep=True) == []


def test_tryagain_is_retried_and_a_move_that_never_ends_stops_clearly(server_factory, cluster_factory, followed,  # noqa: F811
                                                                      monkeypatch):
    """A multi-key write on keys split between the two masters of a slot in migration is answered TRYAGAIN: tried
    again until the move ends, and exact.  A move that never ends stops the follower with error topology naming the
    command, after REDIRECT_SECONDS, its offset before that command (the follower is forked from this process: the
    shorter bound reaches it)."""
    from ansible_collections.kvtools.migration.plugins.module_utils import _sync_cluster_apply
    monkeypatch.setattr(_sync_cluster_apply, 'REDIRECT_SECONDS', 3.0)
    server = server_factory('redis70')
    source = make_fast(server) or server.admin()
    target = cluster_factory('valkey91')
    for tag in (b't', b'u'):
        source.mset({b'{%s}:a' % tag: b'1', b'{%s}:b' % tag: b'1'})
    args = followed(server, target)
    started = engine(args)
    assert not started.get('failed'), started.get('msg')

    def split(tag):
        """The slot of ``tag`` in migration, its key a moved, its key b not."""
        slot = key_slot(b'{%s}' % tag)
        here = target.node_for_slot(slot)
        there = next(n for n in target.nodes if n is not here)
        migrating(target, slot, here, there)
        here.admin().execute_command('MIGRATE', '127.0.0.1', there.port, b'{%s}:a' % tag, 0, 5000, 'AUTH2', 'admin',
                                     servers.PASSWORDS['admin'])
        return slot, here, there

    def tryagains(node):
        return int(node.admin().info('errorstats').get('errorstat_TRYAGAIN', {}).get('count', 0))

    slot, here, there = split(b't')
    source.mset({b'{t}:a': b'2', b'{t}:b': b'2'})
    tx = source.pipeline(transaction=True)
    tx.append(b'{t}:a', b'+')
    tx.append(b'{t}:b', b'+')
    tx.execute()
    deadline = time.time() + 60
    while tryagains(here) == 0:  # the follower's MSET was answered TRYAGAIN (it tries again until the move ends)
        assert time.time() < deadline, 'no TRYAGAIN'
        time.sleep(0.01)
    migrate_keys(slot, here, there)
    finish_move(target, slot, there)
    rec = wait_applied(server, args)
    assert rec['redirects']['tryagain'] >= 1, rec['redirects']
    assert [there.admin().get(b'{t}:%s' % k) for k in (b'a', b'b')] == [b'2+', b'2+']

    split(b'u')  # never finished
    source.mset({b'{u}:a': b'2', b'{u}:b': b'2'})
    after = int(source.info('replication')['master_repl_offset'])
    deadline = time.time() + 60
    rec = {}
    while time.time() < deadline and rec.get('phase') != 'failed':
        rec = read_record(args['record']) or {}
        time.sleep(0.05)
    assert rec.get('phase') == 'failed' and rec['last_error_kind'] == 'topology', rec
    assert 'MSET' in rec['last_error'] and 'TRYAGAIN' in rec['last_error'], rec['last_error']
    assert rec['offset'] < after, 'the applied offset passed a command that was not applied'
