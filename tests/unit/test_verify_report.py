"""The Markdown report of kv_verify (plugins/module_utils/_verify_report.py)."""

from ansible_collections.kvtools.migration.plugins.module_utils._verify_report import render_markdown


def test_markdown_escapes_key_names_and_never_holds_values():
    result = dict(
        consistent=False, summary='db 0: 1 key missing (for example: missing a|b*c in db 0)', values='full',
        ttl_tolerance=2, seconds=0.5,
        source=dict(address='127.0.0.1:1', engine='redis', version='7.0.15'),
        target=dict(address='127.0.0.1:2', engine='valkey', version='9.1.0'),
        dbs=[dict(db=0, target_db=0, keys=3, identical=2, missing=1)], totals=dict(keys=3, identical=2, missing=1),
        differences=[dict(db=0, target_db=0, key='a|b*c', kind='missing', detail='on the source, not on the target'),
                     dict(db=0, target_db=0, key='x`y', kind='extra', detail='on the target only'),
                     dict(db=0, target_db=0, key='', kind='extra', detail='on the target only'),
                     dict(db=0, target_db=0, key='with\\nnewline', kind='ttl_differs', detail='d')],
        memory=dict(source_used_memory=10, target_used_memory=12, ratio=1.2, tolerance=None, within_tolerance=None),
        warnings=['the source changed'])
    text = render_markdown(result)
    assert text.startswith('# kv_verify report\n')
    assert '**NOT consistent**' in text
    assert 'missing a\\|b\\*c in db 0' in text                  # summary: Markdown characters escaped
    assert '| 0 | 0 | missing | `a\\|b*c` | on the source, not on the target |' in text
    assert '| ``x`y`` |' in text                               # a backtick in the name: a longer fence
    assert '*(the empty name)*' in text
    assert '`with\\nnewline`' in text                           # escapes stay visible as typed
    assert '- the source changed' in text
    # every row of the databases table has as many cells as its header
    section = text.split('## Databases')[1].split('## Differences')[0]
    rows = [line for line in section.splitlines() if line.startswith('|')]
    assert len(rows) == 4 and len(set(row.count('|') for row in rows)) == 1
