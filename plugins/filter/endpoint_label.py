# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The filters of kvtools.migration's roles and playbooks (endpoint labels, checks of the user's variables)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r'''
name: endpoint_label
short_description: An endpoint dict as the user gave it, without credentials
version_added: 0.1.0
description:
  - Turns an endpoint dict (C(url) or C(host)/C(port)/C(unix_socket), or C(sentinel)) into C(host:port),
    C(unix:/path), the url without its user and password, or C(sentinel:<service_name>@<sentinels>), for reports
    written before a module could read the server.
  - An endpoint that names a Cloud Foundry service instance (C(cf_service)) becomes C(cf:<instance name>).
options:
  _input:
    description: The endpoint dict.
    type: dict
    required: true
author: kvtools.migration contributors
'''

EXAMPLES = r'''
- name: Name the source in a message
  ansible.builtin.debug:
    msg: "source: {{ kv_source | kvtools.migration.endpoint_label }}"
'''

RETURN = r'''
_value:
  description: The label, for example C(10.0.0.5:6379) or C(rediss://redis.example.com:6380/0).
  type: str
'''

import re


def endpoint_label(endpoint):
    if not isinstance(endpoint, dict) or not endpoint:
        return None
    sentinel = endpoint.get('sentinel')
    if isinstance(sentinel, dict) and sentinel:
        return 'sentinel:%s@%s' % (sentinel.get('service_name'), ','.join(str(h) for h in sentinel.get('hosts') or []))
    url = endpoint.get('url')
    if url:
        # user and password never leave the url
        return re.sub(r'^([A-Za-z0-9+.-]+://)[^@/]*@', r'\1', str(url))
    service = endpoint.get('cf_service')
    if isinstance(service, dict) and (service.get('instance_name') or service.get('instance_guid')):
        # its address comes from the service key: name the instance (and the tunnel, when one is given)
        name = 'cf:%s' % (service.get('instance_name') or service.get('instance_guid'))
        if endpoint.get('host'):
            name += ' via %s:%s' % (endpoint['host'], endpoint.get('port', 6379))
        return name
    if endpoint.get('unix_socket'):
        return 'unix:%s' % endpoint['unix_socket']
    return '%s:%s' % (endpoint.get('host', 'localhost'), endpoint.get('port', 6379))


class FilterModule(object):
    def filters(self):
        return {'endpoint_label': endpoint_label}
