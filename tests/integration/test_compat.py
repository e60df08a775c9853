"""A representative subset of ``make compat`` (tests/support/compat.py): one pair per copy path - restore,
restore+fallback, commands - and each direction between Redis and Valkey, through kv_dump_restore and kv_migrate,
compared key by key by tests/support/compare.py (not kv_verify)."""

import pytest

from tests.support import compat

# (source, target, module) -> expected cell; 'drop:15/6' = 5 field TTLs of 2 hashes in each of dbs 0, 3, 15
CASES = [
    ('redis70', 'valkey80', 'dump_restore', 'exact', 'restore'),             # Redis -> Valkey, RESTORE
    ('redis70', 'valkey80', 'migrate', 'exact', 'migrate'),
    ('valkey80', 'redis74', 'dump_restore', 'exact', 'restore'),             # Valkey -> Redis, RESTORE
    ('valkey80', 'redis74', 'migrate', 'exact', 'migrate'),
    ('redis74', 'valkey91r', 'dump_restore', 'exact', 'restore+fallback'),   # field TTLs by commands
    ('redis74', 'valkey91r', 'migrate', 'refused', None),
    ('redis74', 'valkey80', 'dump_restore', 'drop:15/6', 'commands'),        # Redis -> Valkey, commands
    ('redis74', 'valkey80', 'migrate', 'refused', None),
    ('valkey91', 'redis70', 'dump_restore', 'drop:15/6', 'commands'),        # Valkey -> Redis, commands
    ('valkey91', 'redis72', 'migrate', 'refused', None),
]


@pytest.fixture
def pair_server(session_servers, server_factory):
    cache = session_servers.__dict__.setdefault('compat_cache', {})

    def get(flavour, role):
        key = (flavour, role)
        if key not in cache:
            base = 'valkey91' if flavour == compat.RELAXED else flavour
            from tests.conftest import _require
            _require(base)
            cache[key] = compat.start(flavour, name='%s-%s' % (flavour, role))
            session_servers.started.append(cache[key])
        return cache[key]
    return get


@pytest.mark.parametrize('source,target,module,cell,path', CASES,
                         ids=['%s->%s-%s' % c[:3] for c in CASES])
def test_pair(pair_server, source, target, module, cell, path):
    src, tgt = pair_server(source, 'source'), pair_server(target, 'target')
    compat.load(src)
    result = compat.run_pair(src, tgt, module)
    assert result['cell'] == cell, result
    assert result['ok'], result
    if path:
        assert result['path'] == path, result
