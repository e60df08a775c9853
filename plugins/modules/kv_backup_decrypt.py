#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
module: kv_backup_decrypt
short_description: Decrypt a backup written by kv_rdb_backup back into the plain RDB or logical file
version_added: 0.1.0
description:
  - Reads a backup that M(kvtools.migration.kv_rdb_backup) encrypted with a passphrase and writes the plain
    file - the RDB file a server can load, or the logical C(KVTLOG1) file - to O(dest).
  - Every chunk is authenticated; the plain content is validated again (RDB magic, end opcode and CRC64, or the
    logical file's sha256 trailer) before it is moved into place. A wrong passphrase or a damaged file fails
    and leaves nothing at O(dest).
  - When O(dest) already holds exactly the decrypted content nothing changes (C(changed=false)).
  - Does not connect to any server.
author:
  - kvtools.migration contributors (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.files
options:
  src:
    description:
      - The encrypted backup.
    type: path
    required: true
  dest:
    description:
      - Where to write the plain file. Its directory must exist.
    type: path
    required: true
  passphrase:
    description:
      - The passphrase the backup was encrypted with.
    type: str
    required: true
  mode:
    description:
      - The permissions of O(dest). Defaults to C(0600).
requirements:
  - cryptography (Python library)
seealso:
  - module: kvtools.migration.kv_rdb_backup
attributes:
  check_mode:
    support: full
    description: Checks the passphrase against the file and writes nothing.
  diff_mode:
    support: none
    description: The content is binary; there is no readable difference.
'''

EXAMPLES = r'''
- name: Decrypt last night's backup into an RDB file a server can load
  kvtools.migration.kv_backup_decrypt:
    src: /var/backups/cache-prod.kvbackup
    dest: /var/lib/valkey-restore/dump.rdb
    passphrase: "{{ vault_backup_passphrase }}"
    owner: valkey
    group: valkey
'''

RETURN = r'''
dest:
  description: The plain file.
  returned: always
  type: str
content:
  description: C(rdb) or C(logical).
  returned: always
  type: str
size:
  description: Bytes of the plain file.
  returned: success and not check mode
  type: int
sha256:
  description: sha256 of the plain file (the C(content_sha256) that M(kvtools.migration.kv_rdb_backup) returned).
  returned: success and not check mode
  type: str
rdb_version:
  description: RDB version of the decrypted RDB file.
  returned: when the content is an RDB file
  type: int
checksum:
  description: C(verified) or C(disabled) (CRC64 of the RDB file).
  returned: when the content is an RDB file
  type: str
keys:
  description: Keys in the decrypted logical file.
  returned: when the content is a logical backup
  type: int
'''

from ansible_collections.kvtools.migration.plugins.module_utils._module import KVModule
from ansible_collections.kvtools.migration.plugins.module_utils._backup import decrypt_file


def main():
    module = KVModule(
        argument_spec=dict(
            src=dict(type='path', required=True),
            dest=dict(type='path', required=True),
            passphrase=dict(type='str', required=True, no_log=True),
        ),
        endpoints=(),
        add_file_common_args=True,
    )
    p = module.params
    if p['mode'] is None:
        p['mode'] = '0600'

    def run():
        result = decrypt_file(p['src'], p['dest'], p['passphrase'], check_mode=module.check_mode)
        if not module.check_mode:
            file_args = module.load_file_common_arguments(p, path=p['dest'])
            result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'])
        return result

    module.run(run)


if __name__ == '__main__':
    main()
