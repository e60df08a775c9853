# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stand-in for the ``get-pip.py`` that ``ansible-test`` downloads to bootstrap pip.

``ansible-test`` creates its sanity-test virtual environments without pip and fetches
``get-pip.py`` from ci-files.testing.ansible.com, which these machines cannot reach (only
apt and PyPI are).  ``tests/setup/sanity.sh`` puts this file where ``ansible-test`` caches
that script.  It does the same job from reachable sources: Python's own ``ensurepip`` wheel
first, then the pip version ``ansible-test`` asks for, from PyPI.

ansible-test runs it as ``python get_pip_X_Y.py --disable-pip-version-check pip==X.Y
[--no-setuptools] [--no-wheel]`` inside the new virtual environment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import subprocess
import sys

SKIP_FLAGS = ('--no-setuptools', '--no-wheel')


def main():
    args = [arg for arg in sys.argv[1:] if arg not in SKIP_FLAGS]
    subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
    subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--quiet'] + args)
    if '--no-setuptools' in sys.argv[1:]:
        subprocess.call([sys.executable, '-m', 'pip', 'uninstall', '--quiet', '--yes', 'setuptools'])


if __name__ == '__main__':
    main()
