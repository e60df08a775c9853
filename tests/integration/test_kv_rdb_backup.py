"""kv_rdb_backup and kv_backup_decrypt against real servers.

The main paths run through ansible-playbook as users run them; the engine-level tests call
plugins/module_utils/_backup.py and the files it uses directly.  Every RDB backup is proven by starting a fresh server on
it and comparing its data with the source; every logical backup by restoring it into a fresh
server (``restore_logical`` below, RESTORE ... ABSTTL) and comparing.  Broken transfers come from a
small fake replication server in this file.
"""

import hashlib
import json
import re
import os
import shutil
import socket
import struct
import threading

import pytest

from ansible_collections.kvtools.migration.plugins.module_utils import _backup, _crc64, _logical
from ansible_collections.kvtools.migration.plugins.module_utils._connection import Endpoint
from ansible_collections.kvtools.migration.plugins.module_utils._errors import KVError
from tests.conftest import assert_no_secret
from tests.support import compare, data
from tests.support.servers import PASSWORDS

PASSPHRASE = 'correct horse "battery" staple'
DBS = (0, 3, 15)


# --- helpers -------------------------------------------------------------------------------------

def load(server):
    """Every type, awkward names and TTLs in three dbs."""
    for db in DBS:
        data.load_all_types(server.admin(db), prefix=b'db%d:' % db)


def backup(server, dest, user='migrator', **kwargs):
    return _backup.Backup(Endpoint(server.endpoint(user)), str(dest), **kwargs).run()


def start_on_rdb(server_factory, flavour, rdb_path, tmp_path):
    """A fresh server that loads ``rdb_path`` at start (its dir and dbfilename point at a copy)."""
    directory = tmp_path / ('load-%s-%s' % (flavour, os.urandom(3).hex()))
    directory.mkdir()
    shutil.copy(str(rdb_path), str(directory / 'backup.rdb'))
    server = server_factory(flavour, extra=['dir %s' % directory, 'dbfilename backup.rdb'])
    info = server.admin().info('persistence')
    assert info['loading'] == 0
    return server


def restore_logical(path, server, passphrase=None):
    """Test helper: RESTORE ... ABSTTL every record of a logical backup into ``server``."""
    clients = {}
    count = 0
    for db, key, payload, expire_at in _logical.iter_logical(str(path), passphrase):
        if db not in clients:
            clients[db] = server.admin(db).pipeline(transaction=False)
        args = ['RESTORE', key, expire_at or 0, payload]
        if expire_at:
            args.append('ABSTTL')
        clients[db].execute_command(*args)
        count += 1
        if count % 500 == 0:
            for pipe in clients.values():
                pipe.execute()
    for pipe in clients.values():
        pipe.execute()
    return count


def sha256(path):
    with open(str(path), 'rb') as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def leftovers(directory):
    return sorted(n for n in os.listdir(str(directory)) if n.endswith('.tmp') or n.startswith('.'))


# --- RDB backups that fresh servers load ---------------------------------------------------------

@pytest.mark.parametrize('flavour', ['redis70', 'valkey80', 'valkey9', 'redis62'])
def test_sync_backup_loads_on_a_fresh_server(flavour, request, server_factory, tmp_path):
    source = request.getfixturevalue(flavour)
    load(source)
    if flavour == 'valkey9':  # field TTLs: Valkey 9 sends them only to a replica that says REPLCONF version
        source.admin(0).hset(b'hf', mapping={b'a': b'1', b'b': b'2'})
        source.admin(0).execute_command('HEXPIRE', b'hf', 3600, 'FIELDS', 1, b'a')
    before = compare.snapshot(source)
    dest = tmp_path / 'dump.rdb'
    user = 'default' if flavour == 'redis62' else 'migrator'
    result = backup(source, dest, user=user, method='sync')
    assert result['method_used'] == 'sync' and result['format'] == 'rdb'
    assert result['checksum'] == 'verified' and len(result['crc64']) == 16
    assert result['size'] == os.path.getsize(str(dest)) == result['content_size']
    assert result['sha256'] == sha256(dest) == result['content_sha256']
    expected_rdb = {'redis70': 10, 'valkey80': 11, 'valkey9': 80, 'redis62': 9}[flavour]
    assert result['rdb_version'] == expected_rdb
    with open(str(dest), 'rb') as fh:
        assert fh.read(9) == (b'VALKEY080' if flavour == 'valkey9' else b'REDIS%04d' % expected_rdb)
    assert result['engine'] == ('valkey' if flavour.startswith('valkey') else 'redis')
    with open(str(dest) + '.json') as fh:
        sidecar = json.load(fh)
    for name in ('size', 'sha256', 'rdb_version', 'engine', 'crc64', 'format', 'transfer'):
        assert sidecar[name] == result[name], name
    assert oct(os.stat(str(dest)).st_mode & 0o777) == '0o600'
    assert leftovers(tmp_path) == []
    assert compare.snapshot(source) == before, 'the backup changed the source'

    restored = start_on_rdb(server_factory, source.flavour, dest, tmp_path)
    compare.assert_same(source, restored, [(db, db) for db in DBS])
    if flavour == 'valkey9':
        assert restored.admin(0).hgetall(b'hf') == {b'a': b'1', b'b': b'2'}
        assert restored.admin(0).execute_command('HTTL', b'hf', 'FIELDS', 1, b'a')[0] > 3000
    assert_no_secret(result)
    assert_no_secret(json.dumps(sidecar))


@pytest.mark.parametrize('flavour', ['redis70', 'valkey80', 'valkey91'])
def test_diskless_stream(flavour, server_factory, tmp_path):
    """repl-diskless-sync yes: the server streams the RDB with an EOF mark instead of a length."""
    source = server_factory(flavour, extra=['repl-diskless-sync yes', 'repl-diskless-sync-delay 0'])
    load(source)
    assert source.admin().config_get('repl-diskless-sync')['repl-diskless-sync'] in ('yes', b'yes')
    dest = tmp_path / 'diskless.rdb'
    result = backup(source, dest, method='sync')
    assert result['transfer'] == 'eof-stream'
    assert result['checksum'] == 'verified'
    restored = start_on_rdb(server_factory, flavour, dest, tmp_path)
    compare.assert_same(source, restored, [(db, db) for db in DBS])


def test_sized_transfer_without_capa_eof(redis70, server_factory, tmp_path):
    """A replica that does not announce capa eof gets the disk-based $<length> transfer."""
    load(redis70)
    dest = tmp_path / 'sized.rdb'
    result = backup(redis70, dest, method='sync', capabilities=('rdb-only',))
    assert result['transfer'] == 'sized'
    assert result['checksum'] == 'verified'
    restored = start_on_rdb(server_factory, 'redis70', dest, tmp_path)
    compare.assert_same(redis70, restored, [(db, db) for db in DBS])


def test_checksum_disabled_is_reported(server_factory, tmp_path):
    source = server_factory('valkey80', extra=['rdbchecksum no'])
    load(source)
    result = backup(source, tmp_path / 'nocrc.rdb', method='sync')
    assert result['checksum'] == 'disabled' and result['crc64'] is None


def test_crc64_matches_the_servers_dump_payloads(redis70, valkey9):
    """The CRC64 implementation against the servers' own: a DUMP payload ends with the CRC64 of the rest."""
    for server in (redis70, valkey9):
        client = server.admin()
        client.set(b'k', os.urandom(3000))
        client.rpush(b'l', *[os.urandom(50) for dummy in range(100)])
        for key in (b'k', b'l'):
            payload = client.dump(key)
            assert _crc64.crc64(payload[:-8]) == struct.unpack('<Q', payload[-8:])[0]


# --- through ansible-playbook ------------------------------------------------------------------------

def test_module_check_mode_then_backups_with_rotation(redis70, server_factory, run_module, tmp_path):
    load(redis70)
    dest = str(tmp_path / 'backups' / 'source.rdb')
    os.makedirs(os.path.dirname(dest))
    args = {'server': redis70.endpoint('migrator'), 'dest': dest, 'keep': 2}

    checked = run_module('kv_rdb_backup', args, check=True)
    assert not checked.get('failed'), checked.get('msg')
    assert checked['changed'] is True and checked['check_mode'] is True
    assert checked['method_used'] == 'sync' and checked['format'] == 'rdb'
    assert checked['source_keys'] == 3 * 16
    assert os.listdir(os.path.dirname(dest)) == [], 'check mode wrote something'

    results = []
    for dummy in range(4):
        result = run_module('kv_rdb_backup', args)
        assert not result.get('failed'), result.get('msg')
        assert result['changed'] is True
        assert_no_secret(result)
        assert_no_secret(result['_output'])
        results.append(result)
    assert results[0]['rotated'] == [] and results[0]['removed'] == []
    names = sorted(os.listdir(os.path.dirname(dest)))
    older = sorted((p for p in names if re.match(r'^source\.rdb\.\d{8}T\d{6}Z(-\d+)?$', p)),
                   key=lambda p: os.stat(os.path.join(os.path.dirname(dest), p)).st_mtime)
    assert len(older) == 2 and sorted(names) == sorted(['source.rdb', 'source.rdb.json'] + older + [p + '.json' for p in older])
    # the newest is dest; the older ones keep the name of the time they were written; the first went by keep=2
    older = [os.path.join(os.path.dirname(dest), p) for p in older]
    assert sha256(dest) == results[3]['sha256']
    assert sha256(older[1]) == results[2]['sha256']
    assert sha256(older[0]) == results[1]['sha256']
    with open(older[1] + '.json') as fh:
        assert json.load(fh)['sha256'] == results[2]['sha256']
    assert len(results[3]['removed']) == 2 and all(sha256(p) != results[0]['sha256'] for p in older + [dest])
    for path in (dest, dest + '.json'):
        assert oct(os.stat(path).st_mode & 0o777) == '0o600'

    restored = start_on_rdb(server_factory, 'redis70', dest, tmp_path)
    compare.assert_same(redis70, restored, [(db, db) for db in DBS])


def test_module_mode_option(valkey80, run_module, tmp_path):
    valkey80.admin().set(b'k', b'v')
    dest = str(tmp_path / 'b.rdb')
    result = run_module('kv_rdb_backup', {'server': valkey80.endpoint('migrator'), 'dest': dest, 'mode': '0640'})
    assert not result.get('failed'), result.get('msg')
    assert oct(os.stat(dest).st_mode & 0o777) == '0o640'


# --- the NOPERM fallback to a logical backup --------------------------------------------------------

def test_noperm_falls_back_to_a_logical_backup_that_restores(redis70, server_factory, run_module, tmp_path):
    """The reader user may not SYNC: auto writes a logical backup, says so, and it restores fully."""
    load(redis70)
    dest = str(tmp_path / 'logical.kvt')
    result = run_module('kv_rdb_backup', {'server': redis70.endpoint('reader'), 'dest': dest})
    assert not result.get('failed'), result.get('msg')
    assert result['method'] == 'auto' and result['method_used'] == 'logical' and result['format'] == 'logical'
    assert any("'sync'" in w and 'logical backup' in w for w in result['warnings']), result['warnings']
    assert result['keys'] == 3 * 16
    assert [(d['db'], d['keys'], d['copied'], d['failed']) for d in result['dbs']] == [(db, 16, 16, 0) for db in DBS]
    assert result['rdb_version'] == 10
    assert_no_secret(result)
    assert_no_secret(result['_output'])

    header = _logical.logical_header(dest)
    assert header['engine'] == 'redis' and header['rdb_version'] == 10 and header['format'] == 1
    target = server_factory('redis70')
    assert restore_logical(dest, target) == 48
    compare.assert_same(redis70, target, [(db, db) for db in DBS])

    # check mode: the reader may not even ask ACL DRYRUN, so the plan says SYNC is tried first
    checked = run_module('kv_rdb_backup', {'server': redis70.endpoint('reader'), 'dest': dest + '.2'}, check=True)
    assert checked['method_used'] == 'sync' and 'logical if the server refuses' in checked['method_reason']
    assert not os.path.exists(dest + '.2')


def test_method_sync_refused_fails_with_advice(redis70, tmp_path):
    redis70.admin().set(b'k', b'v')
    with pytest.raises(KVError) as err:
        backup(redis70, tmp_path / 'x.rdb', user='reader', method='sync')
    assert err.value.kind == 'noperm'
    assert "'sync'" in err.value.message and 'ACL SETUSER reader +sync' in err.value.message
    assert 'method=logical' in err.value.message
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize('flavour', ['valkey9', 'redis62'])
def test_logical_backup_restores_other_engines(flavour, request, server_factory, tmp_path):
    """Valkey 9 (PEXPIRETIME, RDB 80) and Redis 6.2 (PTTL made absolute, password-only)."""
    source = request.getfixturevalue(flavour)
    load(source)
    source.admin(0).set(b'soon', b'x', px=400)
    user = 'default' if flavour == 'redis62' else 'reader'
    dest = tmp_path / 'l.kvt'
    result = backup(source, dest, user=user, method='logical')
    assert result['keys'] in (49, 48)  # 'soon' may expire during the backup
    source.admin(0).delete(b'soon')
    target = server_factory(source.flavour, password_only=flavour == 'redis62')
    restore_logical(dest, target)
    target.admin(0).delete(b'soon')
    compare.assert_same(source, target, [(db, db) for db in DBS])


# --- encryption ----------------------------------------------------------------------------------

def test_encrypted_backup_decrypts_to_the_identical_file(valkey80, server_factory, run_module, tmp_path):
    load(valkey80)
    given = str(tmp_path / 'enc.rdb')
    result = run_module('kv_rdb_backup', {'server': valkey80.endpoint('migrator'), 'dest': given,
                                          'passphrase': PASSPHRASE})
    assert not result.get('failed'), result.get('msg')
    # an encrypted backup has its own suffix: never taken for a plain RDB
    dest = given + '.enc'
    assert result['dest'] == dest and result['sidecar'] == dest + '.json' and not os.path.exists(given)
    assert result['encrypted'] is True and result['method_used'] == 'sync'
    assert result['sha256'] == sha256(dest) != result['content_sha256']
    with open(dest, 'rb') as fh:
        raw = fh.read()
    assert raw.startswith(b'KVTENC1\n') and b'REDIS0011' not in raw and b'db0:hash' not in raw
    for text in (result['_output'], json.dumps(result), open(dest + '.json').read()):
        assert_no_secret(text, PASSPHRASE)

    plain = str(tmp_path / 'plain' / 'dump.rdb')
    os.makedirs(os.path.dirname(plain))
    dec = run_module('kv_backup_decrypt', {'src': dest, 'dest': plain, 'passphrase': PASSPHRASE})
    assert not dec.get('failed'), dec.get('msg')
    assert dec['changed'] is True and dec['content'] == 'rdb' and dec['checksum'] == 'verified'
    assert sha256(plain) == result['content_sha256'] == dec['sha256']
    assert oct(os.stat(plain).st_mode & 0o777) == '0o600'
    assert_no_secret(dec['_output'], PASSPHRASE)
    again = run_module('kv_backup_decrypt', {'src': dest, 'dest': plain, 'passphrase': PASSPHRASE})
    assert again['changed'] is False

    restored = start_on_rdb(server_factory, 'valkey80', plain, tmp_path)
    compare.assert_same(valkey80, restored, [(db, db) for db in DBS])

    wrong_dest = str(tmp_path / 'plain' / 'wrong.rdb')
    wrong = run_module('kv_backup_decrypt', {'src': dest, 'dest': wrong_dest, 'passphrase': 'not it'})
    assert wrong.get('failed') and 'passphrase is wrong' in wrong['msg']
    assert not os.path.exists(wrong_dest)
    assert leftovers(os.path.dirname(plain)) == []
    assert_no_secret(wrong['_output'], PASSPHRASE)


def test_encrypted_logical_backup_and_damage(redis70, server_factory, tmp_path):
    load(redis70)
    result = backup(redis70, tmp_path / 'enc.kvt', user='reader', passphrase=PASSPHRASE)
    dest = tmp_path / 'enc.kvt.enc'
    assert result['dest'] == str(dest) and not os.path.exists(str(tmp_path / 'enc.kvt'))
    assert result['method_used'] == 'logical' and result['encrypted']
    with pytest.raises(KVError) as err:
        list(_logical.iter_logical(str(dest)))
    assert err.value.kind == 'passphrase'
    with pytest.raises(KVError) as err:
        list(_logical.iter_logical(str(dest), 'wrong'))
    assert err.value.kind == 'passphrase'
    target = server_factory('valkey80')
    restore_logical(dest, target, PASSPHRASE)
    compare.assert_same(redis70, target, [(db, db) for db in DBS])

    plain = tmp_path / 'plain.kvt'
    dec = _backup.decrypt_file(str(dest), str(plain), PASSPHRASE)
    assert dec['content'] == 'logical' and dec['keys'] == 48 and sha256(plain) == result['content_sha256']

    raw = bytearray(dest.read_bytes())
    raw[len(raw) // 2] ^= 1
    damaged = tmp_path / 'damaged.kvt'
    damaged.write_bytes(bytes(raw))
    with pytest.raises(KVError) as err:
        _backup.decrypt_file(str(damaged), str(tmp_path / 'out.kvt'), PASSPHRASE)
    assert err.value.kind == 'corrupt' and 'fails authentication' in err.value.message
    assert not os.path.exists(str(tmp_path / 'out.kvt'))


# --- TLS -------------------------------------------------------------------------------------------

def test_tls_source_sync_and_logical(valkey80_tls, server_factory, tmp_path):
    load(valkey80_tls)
    rdb = tmp_path / 'tls.rdb'
    result = backup(valkey80_tls, rdb, method='sync')
    assert result['checksum'] == 'verified'
    restored = start_on_rdb(server_factory, 'valkey80', rdb, tmp_path)
    compare.assert_same(valkey80_tls, restored, [(db, db) for db in DBS])
    logical = tmp_path / 'tls.kvt'
    result = backup(valkey80_tls, logical, method='logical')
    assert result['keys'] == 48
    target = server_factory('valkey80')
    restore_logical(logical, target)
    compare.assert_same(valkey80_tls, target, [(db, db) for db in DBS])


def test_tls_client_certificate_and_server_name(server_factory, tmp_path):
    source = server_factory('redis70', tls=True, tls_auth_clients=True)
    source.admin().set(b'k', b'v')
    ep = source.endpoint('migrator', host='127.0.0.1', server_name='localhost')
    result = _backup.Backup(Endpoint(ep), str(tmp_path / 'c.rdb'), method='sync').run()
    assert result['checksum'] == 'verified'
    no_cert = dict(ep)
    no_cert.pop('client_cert')
    no_cert.pop('client_key')
    with pytest.raises(KVError) as err:
        _backup.Backup(Endpoint(no_cert), str(tmp_path / 'd.rdb'), method='sync').run()
    assert err.value.kind == 'tls'
    assert not os.path.exists(str(tmp_path / 'd.rdb'))


# --- broken transfers from a fake replication server --------------------------------------------------

def synthetic_rdb(crc=True):
    body = (b'REDIS0010' + b'\xfa\x09redis-ver\x067.0.15' + b'\xfe\x00\xfb\x01\x00' + b'\x00\x01k\x01v'
            + b''.join(b'\x00\x05key%02d\x05value' % i for i in range(20)) + b'\xff')
    return body + struct.pack('<Q', _crc64.crc64(body) if crc else 0)


class FakeReplicationServer:
    """Answers AUTH/PING/INFO/REPLCONF like a Redis 7.0 and SYNC with ``reply`` (bytes), then closes."""

    def __init__(self, reply):
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.commands = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, dummy = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        buf = b''
        with conn:
            while True:
                while True:
                    command, buf = self.parse(buf)
                    if command is None:
                        break
                    name = command[0].upper()
                    self.commands.append(name)
                    if name == b'SYNC':
                        conn.sendall(self.reply)
                        return
                    conn.sendall(self.answer(name))
                data = conn.recv(65536)
                if not data:
                    return
                buf += data

    @staticmethod
    def parse(buf):
        if not buf:
            return None, buf
        if not buf.startswith(b'*'):
            pos = buf.find(b'\r\n')
            return (None, buf) if pos < 0 else (buf[:pos].split(), buf[pos + 2:])
        lines = buf.split(b'\r\n')
        try:
            count = int(lines[0][1:])
            args = [lines[2 + 2 * i] for i in range(count)]
        except (IndexError, ValueError):
            return None, buf
        used = sum(len(x) + 2 for x in lines[:1 + 2 * count])
        return args, buf[used:]

    @staticmethod
    def answer(name):
        if name == b'PING':
            return b'+PONG\r\n'
        if name == b'INFO':
            text = b'# Server\r\nredis_version:7.0.15\r\nrole:master\r\n# Keyspace\r\ndb0:keys=21,expires=0\r\n'
            return b'$%d\r\n%s\r\n' % (len(text), text)
        if name in (b'AUTH', b'REPLCONF', b'CLIENT', b'HELLO'):
            return b'+OK\r\n'
        return b'-ERR unknown command\r\n'

    def close(self):
        self.sock.close()


GOOD = synthetic_rdb()
MARK = b'0123456789abcdef0123456789abcdef01234567'
CORRUPT = GOOD[:30] + bytes([GOOD[30] ^ 0x20]) + GOOD[31:]


@pytest.mark.parametrize('name,reply,kind,words', [
    ('sized truncated', b'\n\n$%d\r\n' % len(GOOD) + GOOD[:-20], 'truncated', 'ended early'),
    ('stream without mark', b'$EOF:' + MARK + b'\r\n' + GOOD, 'truncated', 'without its end mark'),
    ('stream cut short', b'$EOF:' + MARK + b'\r\n' + GOOD[:-12] + MARK, 'corrupt', 'not where the checksum'),
    ('corrupt byte', b'$%d\r\n' % len(CORRUPT) + CORRUPT, 'corrupt', 'CRC64 mismatch'),
    ('corrupt stream', b'\n$EOF:' + MARK + b'\r\n' + CORRUPT + MARK, 'corrupt', 'CRC64 mismatch'),
    ('not an rdb', b'$%d\r\n' % len(b'HELLO0010' + GOOD[9:]) + b'HELLO0010' + GOOD[9:], 'corrupt', 'REDISnnnn'),
    ('garbage header', b'%garbage\r\n', 'protocol', 'transfer header'),
])
def test_broken_transfers_leave_nothing(name, reply, kind, words, tmp_path):
    fake = FakeReplicationServer(reply)
    try:
        dest = tmp_path / 'dump.rdb'
        dest.write_bytes(b'the previous backup')
        ep = Endpoint({'host': '127.0.0.1', 'port': fake.port, 'username': 'u', 'password': 'fake-Secret-9'})
        with pytest.raises(KVError) as err:
            _backup.Backup(ep, str(dest), method='sync', keep=3).run()
        assert err.value.kind == kind, (name, err.value.message)
        assert words in err.value.message, err.value.message
        assert 'fake-Secret-9' not in err.value.message
        assert dest.read_bytes() == b'the previous backup', 'a failed backup touched the previous one'
        assert sorted(os.listdir(str(tmp_path))) == ['dump.rdb'], 'a failed backup left files'
        assert b'SYNC' in fake.commands
    finally:
        fake.close()


def test_good_transfer_from_the_fake_server_both_framings(tmp_path):
    """The control case of the test above: the same fake server with an intact payload."""
    for reply, transfer in ((b'\n\n$%d\r\n' % len(GOOD) + GOOD, 'sized'),
                            (b'$EOF:' + MARK + b'\r\n' + GOOD + MARK, 'eof-stream')):
        fake = FakeReplicationServer(reply)
        try:
            dest = tmp_path / ('%s.rdb' % transfer)
            ep = Endpoint({'host': '127.0.0.1', 'port': fake.port})
            result = _backup.Backup(ep, str(dest), method='sync').run()
            assert result['transfer'] == transfer and result['checksum'] == 'verified'
            assert dest.read_bytes() == GOOD
        finally:
            fake.close()


def test_broken_transfer_through_the_module(run_module, tmp_path):
    fake = FakeReplicationServer(b'$%d\r\n' % len(CORRUPT) + CORRUPT)
    try:
        dest = str(tmp_path / 'dump.rdb')
        result = run_module('kv_rdb_backup', {'server': {'host': '127.0.0.1', 'port': fake.port,
                                                         'password': PASSWORDS['admin']},
                                              'dest': dest, 'passphrase': PASSPHRASE})
        assert result.get('failed')
        assert 'CRC64 mismatch' in result['msg'] and result['error'] == 'corrupt'
        assert not os.path.exists(dest) and not os.path.exists(dest + '.enc')
        assert_no_secret(result['_output'], PASSPHRASE)
    finally:
        fake.close()


def test_check_mode_plans_logical_when_acl_dryrun_says_no(redis70, tmp_path):
    """A user that may ask ACL DRYRUN but not SYNC: check mode already knows auto will write a logical file."""
    admin = redis70.admin()
    admin.execute_command('ACL', 'SETUSER', 'nosync', 'on', '>nosync-Secret-5', '~*', '+@read', '+scan', '+dump',
                          '+info', '+select', '+ping', '+acl|dryrun', '+acl|whoami')
    admin.set(b'k', b'v')
    ep = Endpoint({'host': '127.0.0.1', 'port': redis70.port, 'username': 'nosync', 'password': 'nosync-Secret-5'})
    plan = _backup.Backup(ep, str(tmp_path / 'x'), check_mode=True).run()
    assert plan['method_used'] == 'logical' and plan['method_reason'] == 'the user may not run SYNC'
    assert plan['changed'] is True and os.listdir(str(tmp_path)) == []
    real = _backup.Backup(ep, str(tmp_path / 'x')).run()
    assert real['method_used'] == 'logical' and real['keys'] == 1
