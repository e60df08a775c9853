"""Sentinel between steps, the pieces that need no server: which side of a kv_sync record moved, the refusal of
the drain, how the resume is described, and the node endpoints of kv_isolate's group isolation
(against real sentinels: tests/integration/test_sentinel_steps.py)."""

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._isolate_sentinel import (
    node_endpoint, node_record_path)
from ansible_collections.kvtools.migration.plugins.module_utils._sync_sentinel import (
    drain_refusal, moved_masters, node_fields, resume_note)


def _sentinel_ep(label, master):
    ep = Endpoint(dict(username='u', password='data-pw', sentinel=dict(
        hosts=['127.0.0.1:26379'], service_name='sessions', password='snt-pw')), label=label)
    ep.set_master(*master)
    return ep


def test_moved_masters_compares_only_sentinel_sides_with_the_record():
    source = _sentinel_ep('source', ('10.0.0.2', 6379))
    target = Endpoint(dict(host='10.0.0.9', port=6380), label='target')
    record = dict(source_node='10.0.0.1:6379', target_node='10.0.0.8:6380')  # a plain target never "moves"
    assert node_fields(source, target) == dict(source_node='10.0.0.2:6379', target_node='10.0.0.9:6380')
    assert moved_masters(source, target, record) == [dict(side='source', old_master='10.0.0.1:6379',
                                                          new_master='10.0.0.2:6379')]
    assert moved_masters(source, target, dict(record, source_node='10.0.0.2:6379')) == []
    assert moved_masters(source, target, {}) == []  # a record from before: nothing to compare
    assert moved_masters(source, target, None) == []


def test_drain_refusal_names_both_masters_and_the_record():
    source = _sentinel_ep('source', ('10.0.0.2', 6379))
    target = _sentinel_ep('target', ('10.0.1.2', 6379))
    record = dict(source_node='10.0.0.2:6379', target_node='10.0.1.1:6379')
    err = drain_refusal(source, target, record, '/tmp/sync.json')
    assert err.kind == 'failover'
    assert '10.0.1.1:6379' in err.message and '10.0.1.2:6379' in err.message and '/tmp/sync.json' in err.message
    assert 'state=started' in err.message and 'snt-pw' not in err.message
    assert err.details['moved'] == [dict(side='target', old_master='10.0.1.1:6379', new_master='10.0.1.2:6379')]
    assert drain_refusal(source, target, dict(record, target_node='10.0.1.2:6379'), '/tmp/sync.json') is None


def test_resume_note_says_continue_or_snapshot_from_the_counters():
    moved = [dict(side='source', old_master='a:1', new_master='b:2')]
    before = dict(snapshot_done=True, full_resyncs=0, continued=2)
    how, text = resume_note(moved, before, dict(full_resyncs=0, continued=3))
    assert how == 'continue' and 'a:1' in text and 'b:2' in text and 'PSYNC continue' in text
    how, text = resume_note(moved, before, dict(full_resyncs=1, continued=2))
    assert how == 'snapshot' and 'new snapshot' in text
    assert resume_note(moved, dict(snapshot_done=False), dict(full_resyncs=0))[0] == 'snapshot'


def test_node_endpoint_points_at_one_node_with_the_data_credentials():
    ep = _sentinel_ep('server', ('10.0.0.1', 6379))
    node = node_endpoint(ep, '10.0.0.3:6390')
    assert (node.host, node.port, node.address, node.identity) == ('10.0.0.3', 6390, '10.0.0.3:6390', '10.0.0.3:6390')
    assert node.sentinel is None and node.master_watch is None and node.password == 'data-pw'
    assert ep.address == '10.0.0.1:6379' and ep.sentinel is not None  # the endpoint itself is untouched
    assert node_record_path('/r/iso.json', '10.0.0.3:6390') == '/r/iso.json.node-10.0.0.3-6390'
