"""``make compat``: every ordered pair of the startable server versions, copied with kv_dump_restore and with
kv_migrate, then compared key by key by tests/support/compare.py (not kv_verify).

The data set (tests/support/data.py ``load_compat``) has every type in each of its encodings, awkward key names,
key TTLs in seconds, milliseconds and absolute, streams with groups, consumers and pending entries (one for an
entry deleted after delivery), an empty stream that holds only a group, and hash field TTLs on the versions that
have them, in dbs 0, 3 and 15.

A cell of the grid is one of:

``exact``      the target holds exactly what the source holds (values, key TTLs, field TTLs, stream metadata,
               groups, consumers, pending entries)
``drop:F/K``   the target cannot hold hash field TTLs: the copy refused with on_unsupported=fail and wrote
               nothing, then with on_unsupported=drop copied everything else exactly, F fields of K keys without
               their TTL, exactly as its result counted
``refused``    kv_migrate refused before writing anything (the target cannot take the source's payloads), as
               kv_preflight says; nothing on the target
``DIFF n``     n differences (a defect), ``ERROR`` an unexpected failure (a defect)

Usage: ``python tests/support/compat.py [--only redis74,valkey80] [--modules dump_restore,migrate]
[--out .build/compat.json]``.  Exit status 1 when any cell is a defect.
"""

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from tests.support import ansible as kv_ansible  # noqa: E402
from tests.support import compare, data, servers  # noqa: E402

sys.path.insert(0, kv_ansible.ensure_collection_path())

from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._copy import CopyOptions, DumpRestore  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._migrate import Migrate, MigrateOptions  # noqa: E402
from ansible_collections.kvtools.migration.plugins.module_utils._preflight import preflight  # noqa: E402

DBS = (0, 3, 15)
MODULES = ('dump_restore', 'migrate')
# an extra target: Valkey 9.1 with rdb-version-check relaxed (RESTORE first, commands where it refuses a key)
RELAXED = 'valkey91r'


def start(flavour, name=None):
    if flavour == RELAXED:
        return servers.Server('valkey91', extra=['rdb-version-check relaxed'], name=name or flavour).start()
    return servers.Server(flavour, password_only=flavour == 'redis62', name=name or flavour).start()


def load(server):
    server.flushall()
    for db in DBS:
        data.load_compat(server.admin(db), prefix=b'' if db == 0 else b'db%d:' % db)


def _engine(module, source, target, on_unsupported):
    src, tgt = Endpoint(source.endpoint(), 'source'), Endpoint(target.endpoint(), 'target')
    if module == 'migrate':
        return Migrate(src, tgt, MigrateOptions(on_unsupported=on_unsupported))
    return DumpRestore(src, tgt, CopyOptions(on_unsupported=on_unsupported))


def _problems(source, target, holds):
    out = []
    for db in DBS:
        out += compare.differences(source.admin(db), target.admin(db), limit=100, deep=True,
                                   target_holds_field_ttls=holds)
    return out


def _empty(server):
    return all(server.admin(db).dbsize() == 0 for db in range(16))


def run_pair(source, target, module):
    """Copy the loaded ``source`` into the emptied ``target`` with ``module``; returns a dict with ``cell`` (see
    the module docstring), ``ok`` (not a defect), ``path`` and ``detail``.  For kv_migrate, kv_preflight's
    ``migrate_possible`` must say in advance whether it refuses."""
    result = _run_pair(source, target, module)
    if module == 'migrate':
        target.flushall()
        plan = preflight(Endpoint(source.endpoint(), 'source'), Endpoint(target.endpoint(), 'target'),
                         on_unsupported='drop')
        if plan['migrate_possible'] != (result['cell'] != 'refused'):
            result = dict(result, ok=False, cell='PREFLIGHT', detail='kv_preflight said migrate_possible=%s, kv_migrate: %s'
                          % (plan['migrate_possible'], result['cell']))
    return result


def _run_pair(source, target, module):
    target.flushall()
    holds = data.field_ttls_supported(target.admin())
    started = time.time()
    try:
        result = _engine(module, source, target, 'fail').run()
    except KVError as exc:
        if exc.kind == 'unsupported':
            if not _empty(target):
                return dict(cell='ERROR', ok=False, detail='refused with on_unsupported=fail but wrote keys')
            return _dropped(source, target, module, started)
        if module == 'migrate' and exc.kind in ('payload', 'config'):
            ok = _empty(target)
            return dict(cell='refused' if ok else 'ERROR', ok=ok, detail=str(exc)[:300])
        return dict(cell='ERROR', ok=False, detail='%s: %s' % (exc.kind, str(exc)[:300]))
    except Exception as exc:  # a defect: say what
        return dict(cell='ERROR', ok=False, detail='%s: %s' % (exc.__class__.__name__, str(exc)[:300]))
    problems = _problems(source, target, holds)
    failed = result['totals']['failed']
    ok = not problems and not failed
    return dict(cell='exact' if ok else 'DIFF %d' % (len(problems) + failed), ok=ok, path=result.get('payload_path'),
                seconds=round(time.time() - started, 2), detail='; '.join(problems[:5]) or None,
                failures=result['failures'][:5])


def _dropped(source, target, module, started):
    try:
        result = _engine(module, source, target, 'drop').run()
    except KVError as exc:
        if module == 'migrate' and exc.kind in ('payload', 'config') and _empty(target):
            return dict(cell='refused', ok=True, detail=str(exc)[:300])
        return dict(cell='ERROR', ok=False, detail='drop: %s: %s' % (exc.kind, str(exc)[:300]))
    problems = _problems(source, target, False)
    lost = [p for p in problems if p.startswith('lost: ')]
    others = [p for p in problems if not p.startswith('lost: ')]
    fields = sum(int(p.split()[1]) for p in lost)
    dropped = (result.get('unsupported') or {}).get('hash_field_ttls_dropped') or {}
    ok = not others and not result['totals']['failed'] and dropped == dict(keys=len(lost), fields=fields)
    cell = 'drop:%d/%d' % (fields, len(lost)) if ok else 'DIFF %d' % (len(others) + result['totals']['failed'] or 1)
    return dict(cell=cell, ok=ok, path=result.get('payload_path'), seconds=round(time.time() - started, 2),
                detail='; '.join(others[:5]) or ('counted %s, found %d/%d' % (dropped, fields, len(lost))
                                                 if not ok else None))


def grid(flavours, results, module):
    width = max(10, max(len(f) for f in flavours) + 1)
    lines = ['%s  (rows: source, columns: target)' % module,
             ''.join(s.ljust(width) for s in ['src \\ tgt'] + list(flavours))]
    for src in flavours:
        row = [src]
        for tgt in flavours:
            row.append('-' if src == tgt or (src, tgt, module) not in results else results[(src, tgt, module)]['cell'])
        lines.append(''.join(c.ljust(width) for c in row))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--only', help='comma-separated flavours (default: every startable one)')
    parser.add_argument('--modules', default=','.join(MODULES))
    parser.add_argument('--out', default=os.path.join(ROOT, '.build', 'compat.json'))
    args = parser.parse_args(argv)
    wanted = args.only.split(',') if args.only else list(servers.ORDER) + [RELAXED]
    flavours, skipped = [], []
    for f in wanted:
        (flavours if servers.available('valkey91' if f == RELAXED else f) else skipped).append(f)
    for f in skipped:
        print('compat: %s is not installed (tests/setup/install-extra-servers.sh): skipped' % f)
    modules = args.modules.split(',')
    started = {}
    results = {}
    t0 = time.time()
    try:
        for f in flavours:
            started[f] = start(f)
        for src in flavours:
            if src == RELAXED:
                continue  # a target configuration only
            load(started[src])
            for tgt in flavours:
                if tgt == src:
                    continue
                for module in modules:
                    res = run_pair(started[src], started[tgt], module)
                    results[(src, tgt, module)] = res
                    if not res['ok']:
                        print('compat: %s -> %s %s: %s: %s' % (src, tgt, module, res['cell'], res.get('detail')))
            started[src].flushall()
    finally:
        for server in started.values():
            server.cleanup()
    print()
    for module in modules:
        print(grid(flavours, results, module))
        print()
    bad = [k for k, v in results.items() if not v['ok']]
    counts = {}
    for v in results.values():
        key = v['cell'].split(':')[0].split(' ')[0]
        counts[key] = counts.get(key, 0) + 1
    print('compat: %d pairs x modules in %.0f s: %s; %d defects' % (
        len(results), time.time() - t0, ', '.join('%s %d' % kv for kv in sorted(counts.items())), len(bad)))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, 'w') as fh:
        json.dump(dict(('%s->%s %s' % k, v) for k, v in results.items()), fh, indent=1, sort_keys=True, default=str)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
