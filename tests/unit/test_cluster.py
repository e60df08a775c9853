"""Pure logic of cluster mode: the key slot, the topology's coverage, redirections, the plan per node."""

from ansible_collections.kvtools.migration.plugins.module_utils._cluster import Master, Topology, key_slot
from ansible_collections.kvtools.migration.plugins.module_utils._cluster_plan import node_plan, plan_lines
from ansible_collections.kvtools.migration.plugins.module_utils._cluster_target import redirect
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._wire import ReplyError
from tests.support.cluster import key_slot as independent_slot


def test_key_slot_known_values_and_hash_tags():
    assert key_slot(b'123456789') == 0x31C3  # the CRC16-XMODEM check value (below 16384)
    assert key_slot(b'foo') == 12182 and key_slot(b'bar') == 5061  # CLUSTER KEYSLOT of Redis
    assert key_slot(b'{user1000}.following') == key_slot(b'{user1000}.followers') == key_slot(b'user1000')
    assert key_slot(b'foo{}{bar}') == independent_slot(b'foo{}{bar}')  # an empty tag: the whole name
    assert key_slot(b'foo{}{bar}') != key_slot(b'bar')
    assert key_slot(b'foo{{bar}}zap') == key_slot(b'{bar')  # the first { to the first } after it
    assert key_slot(b'foo{bar}{zap}') == key_slot(b'bar')
    for name in (b'\xff\x00\n', b'', b'{', b'}{x}', b'a{b', b'{\n}tag', b'k:%d' % 12345):
        assert key_slot(name) == independent_slot(name), name


def _topology(ranges, failing=(), state='ok'):
    seed = Endpoint({'host': '10.0.0.1', 'port': 7000, 'username': 'u', 'password': 'secret'}, 'target')
    masters = [Master(seed, 'id%d' % n, '10.0.0.%d' % (n + 1), 7000, r) for n, r in enumerate(ranges)]
    return Topology(seed, masters, state, failing)


def test_topology_coverage_and_node_endpoints():
    full = _topology([[(0, 5460)], [(5461, 10922)], [(10923, 16383)]])
    assert full.unassigned() == [] and full.problems('target') == []
    assert full.slot_addresses()[5461] == '10.0.0.2:7000'
    node = full.masters[2].endpoint
    assert (node.host, node.port, node.username, node.password) == ('10.0.0.3', 7000, 'u', 'secret')
    assert full.endpoint.host == '10.0.0.1', 'the seed endpoint is not changed'
    gaps = _topology([[(0, 99), (101, 5460)], [(5461, 16382)]], failing=['10.0.0.9:7000 (master)'], state='fail')
    assert gaps.unassigned() == [(100, 100), (16383, 16383)]
    text = ' '.join(gaps.problems('source'))
    assert '2 slot(s) unassigned (100, 16383)' in text and '10.0.0.9:7000' in text and 'secret' not in text


def test_redirect_replies():
    assert redirect(ReplyError('MOVED 3999 127.0.0.1:6381')) == ('MOVED', 3999, '127.0.0.1:6381')
    assert redirect(ReplyError('ASK 3999 10.0.0.2:7000')) == ('ASK', 3999, '10.0.0.2:7000')
    assert redirect(ReplyError('BUSYKEY Target key name already exists.')) is None
    assert redirect(b'OK') is None


def test_node_plan_by_slot_share_and_memory():
    facts = dict(masters=[
        dict(address='a:1', node_id='a', slots=8192, keys={0: 10}, used_memory=100, maxmemory=0),
        dict(address='b:1', node_id='b', slots=8192, keys={}, used_memory=50 << 20, maxmemory=60 << 20)])
    nodes, problems = node_plan(facts, 1000, 40 << 20)
    assert [(n['keys_estimate'], n['bytes_estimate'] >> 20, n['keys_now']) for n in nodes] == [(500, 20, 10),
                                                                                               (500, 20, 0)]
    assert nodes[0]['free'] is None and nodes[1]['free'] == 10 << 20
    assert len(problems) == 1 and 'b:1 is too small' in problems[0] and '20 MiB' in problems[0]
    assert plan_lines(nodes)[1].startswith('target master b:1: 8192 slots, about 500 keys (20 MiB)')
    assert node_plan(facts, 1000, None)[1] == []


def test_settle_resends_at_once_then_paces_and_gives_up_after_its_seconds():
    """The first round of redirections goes out at once (a stale slot table); later rounds wait a pause each
    and stop once the time is up, however few rounds that was."""
    from ansible_collections.kvtools.migration.plugins.module_utils._cluster import Settle
    now = [100.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    settle = Settle(seconds=1.0, pause=0.25, clock=lambda: now[0], sleep=sleep)
    assert settle.again() is True and slept == []
    rounds = 1
    while settle.again():
        rounds += 1
    assert slept == [0.25] * 4 and rounds == 5
    assert now[0] == 101.0
