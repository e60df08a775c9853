#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_rdb_backup
short_description: Save a verified, optionally encrypted backup of a Redis or Valkey server
version_added: 0.1.0
description:
  - Writes a backup of every database of one server to O(dest), before anything is migrated.
  - With O(method=sync) the module speaks the replication protocol as C(redis-cli --rdb) does
    (C(REPLCONF capa eof), C(REPLCONF rdb-only 1), C(REPLCONF version), then C(SYNC)) and saves the server's
    RDB file. Both a sized transfer and a diskless stream (C(repl-diskless-sync yes)) are accepted.
    A server started on that file loads the same data.
  - With O(method=logical) every key of every non-empty database is read with C(SCAN), C(DUMP) and
    C(PEXPIRETIME) (C(PTTL) before Redis 7.0) and written with its absolute expiry into a documented file
    format (C(KVTLOG1), see C(docs/backup-format.md)) that M(kvtools.migration.kv_dump_restore) can restore.
    Managed plans that refuse C(SYNC) to ordinary users still allow this.
  - What was received is validated before it is called a backup - the C(REDIS)/C(VALKEY) magic and RDB
    version, the end opcode and the CRC64 trailer (when the server writes checksums) for an RDB file; a
    sha256 trailer for a logical file. The file is streamed to a temporary file next to O(dest) and moved into
    place only when complete and valid. A truncated or corrupted transfer fails and leaves nothing behind.
  - Size, sha256 and RDB version are returned and written into a sidecar file C(<dest>.json).
  - With O(passphrase) the backup is encrypted (AES-256-GCM in authenticated chunks, key derived with scrypt).
    M(kvtools.migration.kv_backup_decrypt) turns it back into the plain file.
  - The server is only read (AUTH, INFO, REPLCONF, SYNC, SCAN, DUMP, PEXPIRETIME). C(SYNC) makes the server
    produce an RDB snapshot (a fork, as for any replica or C(BGSAVE)).
  - Every real run writes a new backup and reports C(changed=true).
  - O(server) may be any node of a cluster. Each master holds only its slots, so every master is backed up - one
    part per master, every master at once (C(SYNC) to each, validated and encrypted as above; under O(method=auto) a
    master that refuses C(SYNC) gets a logical part), written next to O(dest) under names that never change
    (C(<dest root>.<UTC time>-node<i>of<n><dest extension>), C(.enc) when encrypted, each with its sidecar). O(dest)
    itself is then the manifest - a JSON file (no secret) that lists every part (node address and id, slots, file,
    size, sha256, keys) - and the sidecar C(<dest>.json) lists them too (RV(parts)). The free-space check compares
    the sum of every master's expected size before the first part is written; a failed part removes the parts
    already written. O(keep) and O(keep_first) rotate the manifest as they rotate a single backup, and the parts of
    a manifest that is deleted (or replaced with O(keep=0)) are deleted with it.
    M(kvtools.migration.kv_dump_restore) with C(source.url=file://<dest>) restores such a backup into a standalone
    server or a cluster.
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - kvtools.migration.endpoint
  - kvtools.migration.attributes.SERVER
  - ansible.builtin.files
options:
  dest:
    description:
      - The backup file to write. Its directory must exist.
      - An encrypted backup (O(passphrase)) is written to C(<dest>.enc) - its own suffix, so it is never taken for
        a plain RDB - unless O(dest) already ends in C(.enc). RV(dest) is the path written.
        M(kvtools.migration.kv_dump_restore) with C(source.url=file://<dest>) finds C(<dest>.enc) when C(<dest>)
        does not exist; encrypted backups written under a plain name before this suffix stay readable.
      - The sidecar C(<file>.json) is written next to it.
      - The O(server.db) sub-option does not matter - every database is saved.
    type: path
    required: true
  method:
    description:
      - V(sync) saves the server's RDB file over the replication protocol; the user needs C(+sync) and
        C(+replconf) (C(+psync) does not hurt).
      - V(logical) saves every key's C(DUMP) payload and absolute expiry (needs C(+scan +dump +pexpiretime +info)
        and C(+select) for databases other than 0).
      - V(auto) tries V(sync) and falls back to V(logical) when the server refuses C(SYNC) (for example
        C(NOPERM) or an unknown command); RV(method_used) says which one was written and a warning says why.
    type: str
    choices: [auto, sync, logical]
    default: auto
  passphrase:
    description:
      - Encrypt the backup with a key derived from this passphrase (AES-256-GCM, scrypt). Without it the backup is
        written in plain.
      - Needs the Python library C(cryptography) on the host that runs the module.
      - Keep the passphrase safe - without it the backup cannot be read.
    type: str
  keep:
    description:
      - How many older backups to keep next to O(dest). Before the new backup is moved into place, the one at
        O(dest) is renamed to C(<dest>.<UTC time it was written>) (for example C(dump.rdb.20261202T034100Z), with its
        C(.json) sidecar) and keeps that name; of the older backups the newest O(keep) stay, the others are
        deleted. Numbered older backups of earlier versions (C(<dest>.1)) count as older backups.
      - V(0) replaces O(dest). Rotation happens only after the new backup was received and validated.
    type: int
    default: 0
  keep_first:
    description:
      - Never delete the oldest backup next to O(dest) - the one taken before the first migration attempt - whatever
        O(keep) says, so retries cannot rotate it away. The roles of this collection set it; delete that file
        yourself once the migration is accepted.
    type: bool
    default: false
  check_free_space:
    description:
      - Before anything is written, compare the free space of the directory of O(dest) with the size the backup is
        expected to need - the server's C(INFO used_memory_dataset) (else C(used_memory) above
        C(used_memory_startup)) plus 10% and 1 MiB - and fail with C(error=space), naming the directory, the free
        bytes and the needed bytes, when it is smaller. RV(space) says what was compared.
      - An RDB is usually smaller than the data in memory; set V(false) when you know it fits.
    type: bool
    default: true
  progress:
    description:
      - A file the backup rewrites about every second while it runs - bytes received of the expected size (and keys
        written for a logical backup) - the progress file that M(kvtools.migration.kv_wait) shows when the task runs
        with C(async).
    type: path
  mode:
    description:
      - The permissions of O(dest) and its sidecar. Defaults to C(0600) - a backup holds all the data.
      - The file is created with C(0600) and only then given this mode.
notes:
  - The backup is read on the host that runs the module (usually the controller with C(delegate_to)) -
    O(dest) is a path there.
  - The CRC64 check runs in pure Python at about 60 MB/s on one core (measured), the transfer itself at
    network speed; a 1 GiB RDB takes about 20 seconds to check.
  - An RDB written with C(rdbchecksum no) carries no checksum (RV(checksum=disabled)); only its magic and end
    opcode can be checked.
  - To restore an RDB backup, stop a fresh server, put the file into its C(dir) as its C(dbfilename) and start it;
    to restore a logical backup, give it to M(kvtools.migration.kv_dump_restore). See C(docs/backup-format.md).
  - The backup of a cluster is restored with M(kvtools.migration.kv_dump_restore) (C(source.url=file://<dest>)), or
    part by part into the master that served the part's slots.
requirements:
  - redis (Python library)
  - cryptography (Python library, only with O(passphrase))
seealso:
  - module: kvtools.migration.kv_backup_decrypt
  - module: kvtools.migration.kv_dump_restore
attributes:
  check_mode:
    support: full
    description:
      - Connects and reads the server's facts, reports the method that would be used, the files that would be
        written and the rotation that would happen, and writes nothing.
  diff_mode:
    support: none
    description: A backup is a new file every time; there is no useful difference to show.
'''

EXAMPLES = r'''
- name: Save the source's RDB before the migration
  kvtools.migration.kv_rdb_backup:
    server:
      host: redis-old.internal
      username: migrator
      password: "{{ vault_source_password }}"
    dest: /var/backups/redis-old/dump.rdb
    keep: 3
  delegate_to: localhost

- name: Encrypted backup of a managed plan that refuses SYNC (a logical backup is written instead)
  kvtools.migration.kv_rdb_backup:
    server:
      url: "{{ binding.credentials.uri }}"
      ca_cert: /etc/ssl/certs/platform-ca.pem
    dest: /var/backups/cache-prod.kvbackup
    passphrase: "{{ vault_backup_passphrase }}"
  register: backup

- name: Back up every master of a cluster (any node given); dest becomes the manifest of the parts
  kvtools.migration.kv_rdb_backup:
    server: "{{ cluster_node }}"
    dest: /var/backups/cache-cluster/dump.rdb
  delegate_to: localhost

- name: Show what was written
  ansible.builtin.debug:
    msg: "{{ backup.method_used }} backup, {{ backup.size }} bytes, sha256 {{ backup.sha256 }}"
'''

RETURN = r'''
dest:
  description: The absolute path of the backup (O(dest), with C(.enc) appended when encrypted).
  returned: always
  type: str
  sample: /var/backups/redis-old/dump.rdb
sidecar:
  description: The path of the sidecar file with the facts of the backup (the same facts as this result, as JSON).
  returned: always
  type: str
  sample: /var/backups/redis-old/dump.rdb.json
method:
  description: The O(method) asked for.
  returned: always
  type: str
method_used:
  description:
    - C(sync) (an RDB file) or C(logical) (a KVTLOG1 file). In check mode the method a real run would use.
  returned: always
  type: str
  sample: sync
format:
  description: C(rdb) or C(logical); C(cluster) for the backup of a cluster (O(dest) is then the manifest).
  returned: always
  type: str
encrypted:
  description: Whether the file is encrypted.
  returned: always
  type: bool
size:
  description: Bytes of the file written (encrypted size when encrypted); of the manifest for a cluster.
  returned: success and not check mode
  type: int
  sample: 1048576
sha256:
  description: sha256 of the file written.
  returned: success and not check mode
  type: str
content_size:
  description: Bytes of the plain backup (the RDB or logical content before encryption).
  returned: success and not check mode
  type: int
content_sha256:
  description: sha256 of the plain backup; a decrypted copy has this sha256.
  returned: success and not check mode
  type: str
rdb_version:
  description: RDB version of the file (sync) or of the DUMP payloads (logical).
  returned: success
  type: int
  sample: 11
engine:
  description: C(redis) or C(valkey) (null when INFO is not permitted).
  returned: success
  type: str
version:
  description: The server version.
  returned: success
  type: str
  sample: 8.0.1
transfer:
  description: C(sized) (C($<length>) transfer) or C(eof-stream) (diskless stream); null for logical backups.
  returned: success and not check mode
  type: str
checksum:
  description:
    - C(verified) (CRC64 trailer matched), C(disabled) (the server writes no checksum) for RDB files;
      C(sha256 trailer) for logical files.
  returned: success and not check mode
  type: str
crc64:
  description: The CRC64 trailer of the RDB file in hex (null when disabled or logical).
  returned: success and not check mode
  type: str
keys:
  description: Keys written (logical backups); for a cluster, the keys of every part (each RDB part is counted by
    reading it through).
  returned: when a logical backup or the backup of a cluster was written
  type: int
expired:
  description: Keys that expired between SCAN and DUMP (logical backups; not an error).
  returned: when a logical backup was written
  type: int
dbs:
  description:
    - Keys written per database (logical backups), in the per-database shape every module of the collection
      returns - C(keys) and C(copied) are the keys written to the file, the other counters are 0.
  returned: when a logical backup was written
  type: list
  elements: dict
  sample: [{"db": 0, "target_db": 0, "keys": 1200, "copied": 1200, "identical": 0, "conflicts": 0, "replaced": 0,
            "skipped": 0, "expired": 0, "fallback": 0, "failed": 0, "bytes": 0}]
space:
  description:
    - The free-space check before the backup - C(directory), C(free_bytes), C(needed_bytes) (null when not
      checked) and C(estimate) (what the needed bytes were estimated from); for a cluster also C(per_node), the
      expected bytes of each master's part (C(needed_bytes) is their sum).
  returned: always
  type: dict
rotated:
  description: Older backups moved to make room (C({src, dest}) pairs).
  returned: always
  type: list
  elements: dict
removed:
  description: Older backups deleted because of O(keep) (never the oldest one with O(keep_first)).
  returned: always
  type: list
  elements: str
seconds:
  description: Duration of the run.
  returned: always
  type: float
mb_per_second:
  description: Plain backup bytes per second (MB = 10^6 bytes).
  returned: success and not check mode
  type: float
parts:
  description:
    - The backup of a cluster - per master C(address), C(node_id), C(slots), C(ranges), C(file) (next to RV(dest)),
      C(size), C(sha256), C(content_size), C(content_sha256), C(rdb_version), C(method_used), C(checksum) and
      C(keys). In check mode the planned parts - C(address), C(node_id), C(slots), C(keys) (the master's now),
      C(needed_bytes) and C(file).
  returned: when O(server) is a cluster node
  type: list
  elements: dict
  sample: [{"address": "10.0.0.5:6379", "slots": 5461, "file": "dump.20261202T064500Z-node1of3.rdb", "size": 52311,
            "keys": 1708}]
parts_size:
  description: Bytes of every part together (the backup of a cluster).
  returned: when O(server) is a cluster node, except in check mode
  type: int
cluster:
  description: The masters of the cluster backed up, with their slot ranges.
  returned: when O(server) is a cluster node
  type: dict
'''

from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule
from ansible_collections.kvtools.migration.plugins.module_utils._backup_cluster import ClusterBackup


def main():
    module = KVModule(
        argument_spec=dict(
            dest=dict(type='path', required=True),
            method=dict(type='str', choices=['auto', 'sync', 'logical'], default='auto'),
            passphrase=dict(type='str', no_log=True),
            keep=dict(type='int', default=0),
            keep_first=dict(type='bool', default=False),
            check_free_space=dict(type='bool', default=True),
            progress=dict(type='path'),
        ),
        endpoints=('server',),
        add_file_common_args=True,
    )
    endpoint = module.endpoint('server')
    p = module.params
    if p['mode'] is None:
        p['mode'] = '0600'

    def run():
        engine = ClusterBackup(endpoint, p['dest'], method=p['method'], passphrase=p['passphrase'], keep=p['keep'],
                               check_mode=module.check_mode, warn=module.warn, keep_first=p['keep_first'],
                               check_space=p['check_free_space'], progress=p['progress'])
        result = engine.run()
        result.pop('replconf', None)
        if not module.check_mode:
            for path in (result['dest'], result['sidecar']):
                file_args = module.load_file_common_arguments(p, path=path)
                module.set_fs_attributes_if_different(file_args, True)
        return result

    module.run(run)


if __name__ == '__main__':
    main()
