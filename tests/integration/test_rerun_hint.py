"""A lost connection: the hint says what a rerun does in each module, and names a checkpoint only where one exists.

The source closes the connection deterministically: its output buffer limit for normal clients (8 kB) is far
smaller than the replies to one pipelined batch of DUMPs of 4 kB values, so the server drops the client the moment
those replies are queued.
"""

import pytest

CASES = [
    ('kv_verify', {}, None),
    ('kv_rdb_backup', {'method': 'logical'}, None),
    ('kv_dump_restore', {}, 'Rerun to finish'),
    ('kv_dump_restore', {'checkpoint': 'CKPT'}, 'Rerun with the same checkpoint (CKPT)'),
]


@pytest.mark.parametrize('module, extra, hint', CASES, ids=['verify', 'rdb_backup', 'dump_restore',
                                                            'dump_restore-checkpoint'])
def test_lost_connection_hint(module, extra, hint, server_factory, valkey80, run_module, tmp_path):
    source = server_factory('redis70', extra=['client-output-buffer-limit normal 8kb 8kb 0'])
    pipe = source.admin().pipeline(transaction=False)
    for i in range(2000):
        pipe.set(b'key:%d' % i, b'x' * 4096)
    pipe.execute()
    args = dict(extra)
    if 'checkpoint' in args:
        args['checkpoint'] = str(tmp_path / 'copy.ckpt')
        hint = hint.replace('CKPT', args['checkpoint'])
    if module == 'kv_rdb_backup':
        args.update(server=source.endpoint(), dest=str(tmp_path / 'b.kvtlog'))
    else:
        args.update(source=source.endpoint(), target=valkey80.endpoint())
    result = run_module(module, args)
    assert result.get('failed') is True, result
    assert result.get('error') == 'unreachable', result
    msg = result['msg']
    assert 'the connection was lost' in msg, msg
    if hint is None:
        assert 'checkpoint' not in msg, msg
    else:
        assert hint in msg, msg
