# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The words of kv_verify: the summary sentence, and the report file (JSON, or Markdown for a ``.md``
path; key names escaped, never a value).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible_collections.kvtools.migration.plugins.module_utils._files import atomic_write
from ansible_collections.kvtools.migration.plugins.module_utils._text import plural
from ansible_collections.kvtools.migration.plugins.module_utils._verify_rules import DIFF_KINDS, EXAMPLE_WORDS


def change_text(label, change):
    """How a server changed during the verification, in words."""
    parts = []
    if change['writes']:
        parts.append(plural(change['writes'], 'write'))
    if change['expiries']:
        parts.append(plural(change['expiries'], 'key expiry', 'key expiries') + ' or evictions')
    return 'the %s changed during the verification (%s counted in INFO persistence and stats)' % (
        label, ' and '.join(parts))


def summary(result, differing, memory, src_change, opts):
    """The one-paragraph verdict of a verification, with the next step."""
    src, tgt = result['source'], result['target']
    total = result['totals']
    pairs = ', '.join('%d' % d['db'] if d['db'] == d['target_db'] else '%d -> %d' % (d['db'], d['target_db'])
                      for d in result['dbs'])
    what = {'full': 'values', 'sample': 'values (a %g%% sample)' % (opts.sample_rate * 100),
            'none': 'no values'}[opts.values]
    head = 'Target %s (%s %s) against source %s (%s %s), %s (%s)' % (
        tgt['address'], tgt['engine'], tgt['version'], src['address'], src['engine'], src['version'],
        plural(len(result['dbs']), 'db') if result['dbs'] else 'no non-empty db on either side',
        ('db ' if len(result['dbs']) == 1 else 'dbs ') + pairs if result['dbs'] else 'nothing to compare')
    if result['consistent']:
        text = ('%s: consistent. The target holds exactly the %s of the source: key sets in both directions, '
                'types, %s and TTLs (within %g s) match.' % (
                    head, plural(total['keys'], 'key'), what, opts.ttl_tolerance))
        if chosen_count(total):
            text = text.replace(': consistent. The target holds exactly', ': consistent with the choices of the copy. '
                                'Apart from them the target holds exactly', 1)
        text += dropped_text(total) + chosen_text(total)
        if src_change['changed']:
            text += ' Note: %s; run kv_verify again once the source is quiet to be sure.' % (
                change_text('source', src_change))
        return text
    parts = []
    labels = (('missing', 'key missing on the target', 'keys missing on the target'),
              ('extra', 'extra key on the target', 'extra keys on the target'),
              ('type_differs', 'key of another type', 'keys of another type'),
              ('value_differs', 'value differs', 'values differ'),
              ('ttl_differs', 'TTL differs', 'TTLs differ'),
              ('field_ttl_differs', 'hash with other field TTLs', 'hashes with other field TTLs'),
              ('stream_meta_differs', 'stream with other metadata', 'streams with other metadata'),
              ('group_differs', 'stream with other consumer groups', 'streams with other consumer groups'),
              ('pending_differs', 'stream with other pending entries', 'streams with other pending entries'))
    for name, one, many in labels:
        if total[name]:
            parts.append(plural(total[name], one, many))
    text = '%s: NOT consistent' % head
    if parts:
        examples = ', '.join('%s "%s" in %s' % (EXAMPLE_WORDS[d['kind']], d['key'], db_words(d))
                             for d in [d for d in result['differences'] if d['kind'] in DIFF_KINDS][:3])
        example = ' (for example: %s)' % examples if examples else ''
        text += ' - %s out of %s checked%s.' % (', '.join(parts), plural(total['keys'], 'source key'), example)
    else:
        text += '.'
    text += chosen_text(total)
    if memory['within_tolerance'] is False:
        text += ' used_memory of the target is %.1f MiB, %.2f times the source\'s %.1f MiB, outside ' \
                'memory_tolerance %g.' % (memory['target_used_memory'] / 2.0 ** 20, memory['ratio'],
                                          memory['source_used_memory'] / 2.0 ** 20, memory['tolerance'])
    if src_change['changed']:
        text += ' Careful: %s, so these differences may come from those changes rather than from the copy: ' \
                'stop the writers (CLIENT PAUSE WRITE, or unbind the applications) and verify again.' % (
                    change_text('source', src_change))
    elif parts:
        differing = sum(total[k] for k in DIFF_KINDS[2:])
        which = ' and '.join(w for w, n in (('missing', total['missing']), ('differing', differing)) if n)
        steps = []
        if which:
            steps.append('copy the %s keys again (kvtools.migration.kv_dump_restore%s)' % (
                which, ' with on_conflict: replace' if differing else ''))
        if total['extra']:
            steps.append('remove the extra keys from the target or find out who wrote them')
        text += ' Next: %s, then run kv_verify again; the differences list names up to %d keys.' % (
            ', '.join(steps), opts.max_reported)
    return text


def db_words(difference):
    """``db 1``, or ``source db 7 (target db 3)`` when the key went to another db."""
    if difference['db'] == difference.get('target_db', difference['db']):
        return 'db %d' % difference['db']
    return 'source db %d (target db %d)' % (difference['db'], difference['target_db'])


def chosen_count(total):
    return sum(total.get(name) or 0 for name in ('skipped', 'merged', 'merge_conflicts'))


def chosen_text(total):
    """The sentence on differences the copy chose (skipped keys, merged dbs): reported, not an inconsistency."""
    parts = []
    if total.get('skipped'):
        parts.append('%s skipped by on_conflict=skip (target value kept)' % plural(total['skipped'], 'key'))
    if total.get('merged'):
        parts.append('%s that merged source dbs hold with different values, the target holding the one on_conflict '
                     'keeps' % plural(total['merged'], 'key'))
    if total.get('merge_conflicts'):
        parts.append('%s that merged source dbs hold with different values, the target holding one of them (merge '
                     'conflicts: which one on_conflict keeps is not known, give on_conflict to check it)'
                     % plural(total['merge_conflicts'], 'key'))
    if not parts:
        return ''
    return ' Differences the copy chose, not inconsistencies: %s; the differences list names them.' % '; '.join(parts)


def dropped_text(total):
    """The sentence on hash field TTLs the target cannot hold (empty when none were found)."""
    if not total.get('field_ttls_dropped'):
        return ''
    return (' %s the source lost their field TTLs on the target, which cannot hold hash field TTLs: a loss the copy '
            'makes only when asked to (on_unsupported: drop), listed in differences as field_ttl_dropped, not an '
            'inconsistency.' % plural(total['field_ttls_dropped'], 'hash of', 'hashes of'))


def write_report(opts, result, warnings):
    """The report file (``.md``: Markdown, else JSON), unless in check mode."""
    path = opts.report
    if not path or opts.check_mode:
        return
    data = dict(result)
    data['warnings'] = list(warnings)
    if path.endswith('.md'):
        atomic_write(path, render_markdown(data))
    else:
        atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + '\n')


def _md_cell(value):
    """Plain text for a Markdown table cell: one line, Markdown's special characters escaped."""
    text = '' if value is None else str(value)
    return re.sub(r'([\\`*_\[\]<>|#])', r'\\\1', text.replace('\n', ' '))


def _md_row(*cells):
    return '| ' + ' | '.join(_md_cell(c) for c in cells) + ' |'


def _md_code(text):
    """A key name as a Markdown code span (shown literally), safe inside a table cell."""
    text = str(text)
    if not text:
        return '*(the empty name)*'
    ticks = max([len(run) for run in re.findall('`+', text)] or [0])
    fence = '`' * (ticks + 1)
    pad = ' ' if text.startswith('`') or text.endswith('`') else ''
    return fence + pad + text.replace('|', '\\|') + pad + fence


def render_markdown(result):
    """The report as Markdown: summary, per-db table, differences, memory, warnings (never values)."""
    src, tgt = result.get('source', {}), result.get('target', {})
    lines = ['# kv_verify report', '',
             '**%s**' % ('Consistent' if result.get('consistent') else 'NOT consistent'), '',
             _md_cell(result.get('summary')), '',
             '| | address | engine | version |', '|---|---|---|---|',
             _md_row('source', src.get('address'), src.get('engine'), src.get('version')),
             _md_row('target', tgt.get('address'), tgt.get('engine'), tgt.get('version')),
             '',
             'Values compared: %s. TTL tolerance: %g s. Duration: %.1f s.' % (
                 result.get('values'), result.get('ttl_tolerance') or 0, result.get('seconds') or 0),
             '', '## Databases', '']
    cols = ('db', 'target_db', 'source_keys', 'target_keys', 'keys', 'identical', 'conflicts', 'skipped', 'merged',
            'merge_conflicts', 'missing', 'extra',
            'type_differs', 'value_differs', 'ttl_differs', 'field_ttl_differs', 'stream_meta_differs', 'group_differs',
            'pending_differs', 'field_ttls_dropped', 'expired', 'source_expires', 'target_expires')
    lines.append('| ' + ' | '.join(cols) + ' |')
    lines.append('|' + '---|' * len(cols))
    for entry in result.get('dbs', []):
        lines.append('| ' + ' | '.join(_md_cell(entry.get(c, '')) for c in cols) + ' |')
    total = result.get('totals', {})
    lines.append('| **total** | | ' + ' | '.join(_md_cell(total.get(c, '')) for c in cols[2:]) + ' |')
    lines += ['', '## Differences', '']
    diffs = result.get('differences') or []
    if diffs:
        lines += ['Key names are escaped (Python byte-string notation); values are never shown.', '',
                  '| db | target db | kind | key | detail |', '|---|---|---|---|---|']
        for d in diffs:
            lines.append('| %s | %s | %s | %s | %s |' % (
                d.get('db'), d.get('target_db'), d.get('kind'), _md_code(d.get('key')), _md_cell(d.get('detail'))))
    else:
        lines.append('None.')
    mem = result.get('memory', {})
    lines += ['', '## Memory', '',
              '| source used_memory | target used_memory | ratio | tolerance | within |', '|---|---|---|---|---|',
              _md_row(mem.get('source_used_memory'), mem.get('target_used_memory'), mem.get('ratio'),
                      mem.get('tolerance'), mem.get('within_tolerance'))]
    warnings = result.get('warnings') or []
    if warnings:
        lines += ['', '## Warnings', ''] + ['- %s' % _md_cell(w) for w in warnings]
    return '\n'.join(lines) + '\n'
