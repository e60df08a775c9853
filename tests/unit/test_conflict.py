"""Pure logic of plugins/module_utils/_conflict.py and _dumpread.live_entries: what a writer does with a key."""

from ansible_collections.kvtools.migration.plugins.module_utils._conflict import same_entry, sort_existing
from ansible_collections.kvtools.migration.plugins.module_utils._dumpread import live_entries

FOOT_A = b'\x0a\x00' + b'A' * 8  # RDB 10 and a checksum
FOOT_B = b'\x0b\x00' + b'B' * 8  # RDB 11 and another checksum


def item(key, body, expire_at=None):
    return (key, b'\x00' + body + FOOT_A, expire_at, expire_at if expire_at is not None else -1)


def entry(key, body=None, expire_at=None):
    return (key, None if body is None else b'\x00' + body + FOOT_B, expire_at, -1)


def test_same_entry_ignores_the_footer_and_tolerates_a_second_of_ttl():
    assert same_entry(item(b'k', b'v'), entry(b'k', b'v'))
    assert not same_entry(item(b'k', b'v'), entry(b'k', b'w'))
    assert same_entry(item(b'k', b'v', 10000), entry(b'k', b'v', 10900))
    assert not same_entry(item(b'k', b'v', 10000), entry(b'k', b'v', 11500))
    assert not same_entry(item(b'k', b'v', 10000), entry(b'k', b'v'))


def _sort(on_conflict, after_plan=False):
    items = [item(b'new', b'1'), item(b'same', b'2'), item(b'diff', b'3')]
    existing = [entry(b'new'), entry(b'same', b'2'), entry(b'diff', b'x')]
    counts, failures = {}, []
    todo, replace = sort_existing(items, existing, on_conflict, same_entry, 0, counts, failures, after_plan)
    return [i[0] for i in todo], replace, counts, failures


def test_sort_existing_by_on_conflict():
    todo, replace, counts, failures = _sort('fail')
    assert todo == [b'new'] and not replace and counts == {'identical': 1, 'conflicts': 1}
    assert failures == [dict(db=0, key='diff', reason='conflict')]
    todo, replace, counts, failures = _sort('skip')
    assert todo == [b'new'] and counts == {'identical': 1, 'conflicts': 1, 'skipped': 1}
    todo, replace, counts, failures = _sort('replace')
    assert todo == [b'new', b'diff'] and replace == {b'diff'} and not failures


def test_after_the_plan_a_conflict_fails_and_a_vanished_key_conflicts():
    todo, replace, counts, failures = _sort('fail', after_plan=True)
    assert todo == [] and counts == {'identical': 1, 'conflicts': 2, 'failed': 2}


def test_live_entries_count_what_the_source_says_is_gone():
    now = 1000
    entries = [(b'a', b'x', None, -1), (b'gone', None, None, -2), (b'old', b'y', 900, 900), (b'later', b'z', 2000, 2000),
               (b'ttl-gone', b'w', None, -2)]
    items, expired, size = live_entries(entries, now)
    assert [e[0] for e in items] == [b'a', b'later'] and expired == 3 and size == 2
