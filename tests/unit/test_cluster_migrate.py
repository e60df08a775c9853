"""Pure logic of kv_migrate and the type-aware copy with clusters: slot tags, temporary names, the cut of a part
into MIGRATE calls, the redirections learnt from a target's errors."""

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import SLOTS, key_slot, slot_tag
from ansible_collections.kvtools.migration.plugins.module_utils._migrate_route import MigrateRoutes, redirection
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware import TMP_PREFIX, tmp_key
from ansible_collections.kvtools.migration.plugins.module_utils._type_aware_cluster import cluster_redirect
from tests.support.cluster import key_slot as independent_slot


def test_every_slot_has_a_tag_that_hashes_to_it():
    for slot in range(SLOTS):
        tag = slot_tag(slot)
        assert b'{' not in tag and b'}' not in tag and 0 < len(tag) <= 5, (slot, tag)
        assert independent_slot(b'{' + tag + b'}') == slot, (slot, tag)
    assert slot_tag(0) == slot_tag(0), 'a slot keeps its tag'


def test_temporary_names_in_the_key_slot():
    for key in (b'k:1', b'{user:1}:cart', b'{}empty', b'}{x}', b'\xff\x00\n', b'', b'a{b'):
        name = tmp_key(key, in_slot=True)
        assert name.startswith(TMP_PREFIX) and independent_slot(name) == independent_slot(key), key
    assert tmp_key(b'k:1', in_slot=True) != tmp_key(b'k:1', in_slot=True)
    plain = tmp_key()
    assert plain.startswith(TMP_PREFIX) and b'{' not in plain


def test_redirections_of_a_target():
    assert redirection('MOVED 3999 127.0.0.1:6381') == ('MOVED', 3999, '127.0.0.1:6381')
    assert redirection('ASK 12 10.0.0.2:7000') == ('ASK', 12, '10.0.0.2:7000')
    assert redirection('TRYAGAIN Multiple keys request during rehashing of slot') == ('TRYAGAIN', None, None)
    assert redirection('OOM command not allowed') is None and redirection('') is None

    class MovedError(Exception):
        slot_id = 7
        node_addr = ('127.0.0.1', 7001)

    class AskError(MovedError):
        pass
    AskError.__name__ = 'AskError'
    assert cluster_redirect(MovedError('7 127.0.0.1:7001')) == ('MOVED', 7, '127.0.0.1:7001')
    assert cluster_redirect(AskError('7 127.0.0.1:7001')) == ('ASK', 7, '127.0.0.1:7001')
    assert cluster_redirect(Exception('MOVED 9 h:1')) == ('MOVED', 9, 'h:1')
    assert cluster_redirect(Exception('WRONGTYPE Operation')) is None


class _TargetSide:
    """The routing table of a writer into a 2-master cluster (slots below 8192 on a, the others on b)."""

    def __init__(self):
        self.slots = ['a:1' if slot < 8192 else 'b:2' for slot in range(SLOTS)]

    def owner_of_slot(self, slot):
        return self.slots[slot]


def test_calls_per_slot_out_of_a_cluster_and_per_master_into_one():
    keys = [b'k:%d' % n for n in range(200)] + [b'{t}:1', b'{t}:2']
    standalone = MigrateRoutes(None, by_slot=False, target_side=None)
    assert standalone.calls(keys) == [(None, keys)] and standalone.calls([]) == []

    into = MigrateRoutes(None, by_slot=False, target_side=_TargetSide())
    calls = into.calls(keys)
    assert sorted(address for address, _part in calls) == ['a:1', 'b:2']
    for address, part in calls:
        assert all((key_slot(k) < 8192) == (address == 'a:1') for k in part)
    assert sorted(k for _a, part in calls for k in part) == sorted(keys)

    out_of = MigrateRoutes(None, by_slot=True, target_side=None)
    calls = out_of.calls(keys)
    assert all(len(set(key_slot(k) for k in part)) == 1 and address is None for address, part in calls)
    assert [b'{t}:1', b'{t}:2'] in [part for _a, part in calls], 'keys of one slot share a call'
    assert len(calls) == len(set(key_slot(k) for k in keys))

    both = MigrateRoutes(None, by_slot=True, target_side=_TargetSide())
    for address, part in both.calls(keys):
        assert len(set(key_slot(k) for k in part)) == 1 and address == ('a:1' if key_slot(part[0]) < 8192 else 'b:2')


def test_an_ask_sends_the_keys_of_its_slot_through_this_machine():
    routes = MigrateRoutes(None, by_slot=False, target_side=_TargetSide())
    slot = key_slot(b'{t}')
    assert routes.redirected('ASK %d b:2' % slot) is True and routes.redirects == dict(moved=0, ask=1)
    moving, others = routes.asked_keys([b'{t}:1', b'k:1', b'{t}:2'])
    assert moving == [b'{t}:1', b'{t}:2'] and others == [b'k:1']
    assert routes.redirected('BUSYKEY Target key name already exists.') is False
    assert MigrateRoutes(None, by_slot=True, target_side=None).redirected('MOVED 1 a:1') is False


class _Server:
    def __init__(self, engine, version):
        self.engine, self.version = engine, version

    def at_least(self, redis_version, valkey_version=(7, 2, 0)):
        return self.version >= (valkey_version if self.engine == 'valkey' else redis_version)


class _Job:
    def __init__(self, engine, version, parted):
        self.source = type('Source', (), dict(parted=parted, server=_Server(engine, version)))()
        self.opts = type('Options', (), dict(batch_size=5000))()


def test_bigger_scan_batches_out_of_a_cluster_that_scans_across_the_slots():
    from ansible_collections.kvtools.migration.plugins.module_utils._migrate import MigrateWriter, SLOT_SCAN_FACTOR
    across = [('redis', (7, 0, 15), True), ('redis', (7, 2, 4), True), ('valkey', (7, 2, 5), True)]
    by_slot = [('redis', (7, 4, 1), True), ('valkey', (8, 0, 1), True), ('redis', (7, 0, 15), False)]
    for engine, version, parted in across:
        assert MigrateWriter.scan_count(_Job(engine, version, parted)) == 5000 * SLOT_SCAN_FACTOR, (engine, version)
    for engine, version, parted in by_slot:
        assert MigrateWriter.scan_count(_Job(engine, version, parted)) == 5000, (engine, version, parted)
