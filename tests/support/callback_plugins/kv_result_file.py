"""Writes what a play handed to ``ansible.builtin.set_stats`` as ``kv_result_json`` to ``$KV_RESULT_FILE``.

tests/support/ansible.py's ``run_module`` registers the module's result and hands it over with
``set_stats`` (an action of the controller): saving it with ``ansible.builtin.copy`` cost two more module
runs (``stat`` and ``copy``) per call, about as much CPU as the module under test.
"""

import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: kv_result_file
type: aggregate
short_description: the tests' hand-over of a registered result to a file
description: Writes the set_stats value kv_result_json to the file named by KV_RESULT_FILE.
'''


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'kv_result_file'
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get('KV_RESULT_FILE')
        value = (stats.custom.get('_run') or {}).get('kv_result_json')
        if not path or value is None:
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as fh:
            fh.write(str(value))
