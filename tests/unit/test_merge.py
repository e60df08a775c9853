"""Pure logic of db merges and skipped keys: the refusal's words, which db on_conflict keeps, what a writer records
(plugins/module_utils/_keyspace.py, _merge.py, _conflict.py, _verify_report.py)."""

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils._conflict import same_entry, sort_existing
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from ansible_collections.kvtools.migration.plugins.module_utils._keys_log import iter_keys_log
from ansible_collections.kvtools.migration.plugins.module_utils._keyspace import merge_groups, merge_text, select_dbs
from ansible_collections.kvtools.migration.plugins.module_utils._merge import MergeChoices, SkippedLog, read_skipped
from ansible_collections.kvtools.migration.plugins.module_utils._verify_report import chosen_text, db_words

from tests.unit.test_conflict import entry, item


def test_select_dbs_refuses_a_merge_in_one_line_in_the_users_words():
    with pytest.raises(KVError) as err:
        select_dbs({0: 1, 1: 1, 7: 1, 15: 1}, db_map={'1': 3, 7: '3'})
    assert err.value.kind == 'config'
    assert err.value.message == (
        'db_map sends source dbs 1 and 7 into target db 3: set allow_db_merge: true (playbook: kv_allow_db_merge) '
        'to merge them; keys present in both are then handled by on_conflict')
    assert select_dbs({0: 1, 1: 1, 7: 1}, db_map={1: 3, 7: 3}, allow_merge=True) == [(0, 0), (1, 3), (7, 3)]
    assert select_dbs({0: 1, 1: 1}, db_map={1: 4}) == [(0, 0), (1, 4)]


def test_merge_text_names_every_merge():
    groups = merge_groups([(0, 0), (1, 3), (3, 3), (7, 3), (8, 9), (9, 9), (10, 10)])
    assert groups == {3: [1, 3, 7], 9: [8, 9]}
    assert merge_text(groups) == 'db_map sends source dbs 1, 3 and 7 into target db 3; and source dbs 8 and 9 into ' \
                                 'target db 9'


def test_merge_choices_expect_the_value_on_conflict_keeps():
    skip = MergeChoices([(1, 3), (7, 3)], 'skip')
    assert skip.others(3, 7) == [1] and skip.others(0, 0) == []
    assert skip.resolve(7, 3, [1, 7], 1)[0] == 'merged'
    wrong = skip.resolve(1, 3, [1, 7], 7)
    assert wrong[0] == 'wrong_db' and wrong[1] == 'value_differs'
    assert "holds source db 7's, but on_conflict=skip keeps source db 1's" in wrong[2]
    replace = MergeChoices([(1, 3), (7, 3)], 'replace')
    assert replace.resolve(1, 3, [1, 7], 7)[0] == 'merged'
    assert replace.resolve(1, 3, [1, 7], None) is None  # the target holds neither value: a real difference
    assert MergeChoices([(1, 3), (7, 3)], 'fail').resolve(1, 3, [1, 7], 7) is None
    unknown = MergeChoices([(1, 3), (7, 3)]).resolve(1, 3, [1, 7], 7)
    assert unknown[:2] == ('merge_conflicts', 'merge_conflict') and 'give on_conflict' in unknown[2]


def test_sort_existing_records_skipped_keys_and_defers_keys_a_later_merged_db_writes():
    items = [item(b'new', b'1'), item(b'same', b'2'), item(b'diff\n\x00', b'3'), item(b'later\xff', b'4')]
    existing = [entry(b'new'), entry(b'same', b'2'), entry(b'diff\n\x00', b'x'), entry(b'later\xff', b'y')]
    counts, failures, skipped = {}, [], []
    todo, replace = sort_existing(items, existing, 'skip', same_entry, 0, counts, failures, skipped=skipped)
    assert skipped == [b'diff\n\x00', b'later\xff'] and counts['skipped'] == 2
    assert [it[0] for it in todo] == [b'new']
    counts, asked = {}, []

    def defer(keys):
        asked.extend(keys)
        return {b'later\xff'}
    todo, replace = sort_existing(items, existing, 'replace', same_entry, 0, counts, [], defer=defer)
    assert asked == [b'diff\n\x00', b'later\xff']
    assert [it[0] for it in todo] == [b'new', b'diff\n\x00'] and replace == {b'diff\n\x00'}
    assert counts['conflicts'] == 2


def test_skipped_log_round_trips_any_key_name(tmp_path):
    path = str(tmp_path / 'skipped')
    keys = [b'a\nb', b'\x00', b'\xff\xfe', b'', b'x' * 70000]
    log = SkippedLog(path)
    log.add(1, keys[:2])
    log.add(7, keys[2:])
    assert read_skipped(path) == {1: set(keys[:2]), 7: set(keys[2:])}
    resumed = SkippedLog(path, fresh=False)
    resumed.add(3, [b'more'])
    assert list(iter_keys_log(path))[-1] == (3, b'more')
    SkippedLog(path)
    assert read_skipped(path) == {}


def test_report_words():
    assert db_words(dict(db=1, target_db=1)) == 'db 1'
    assert db_words(dict(db=7, target_db=3)) == 'source db 7 (target db 3)'
    text = chosen_text(dict(skipped=1, merged=2, merge_conflicts=0))
    assert '1 key skipped by on_conflict=skip (target value kept)' in text and '2 keys' in text
    assert chosen_text(dict(skipped=0)) == ''
