# -*- coding: utf-8 -*-
# Copyright: (c) 2026, kvtools.migration contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One place that turns server replies and client exceptions into clear, secret-free messages.

Every engine raises :class:`KVError`; every module turns it into ``fail_json``.  The
classifiers here are also used by the copy paths to sort per-key replies (RESTORE,
MIGRATE) into outcomes such as ``busykey`` or ``payload``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import socket
import ssl

try:
    from redis import exceptions as rexc
except ImportError:  # pragma: no cover - the module reports missing_required_lib
    rexc = None

MASK = '********'


class KVError(Exception):
    """A failure the user can act on.

    ``kind`` is a stable machine-readable word (``auth``, ``refused``, ``timeout``, ``tls``,
    ``noperm``, ``db``, ``oom``, ``payload``, ``busykey``, ``not_empty``, ``config``, ``lost``, ...).
    ``endpoint`` is the ``host:port`` it happened at.  The message never holds a secret.
    """

    def __init__(self, message, kind='error', endpoint=None, details=None):
        super(KVError, self).__init__(message)
        self.message = message
        self.kind = kind
        self.endpoint = endpoint
        self.details = details or {}

    def __str__(self):
        return self.message

    def to_result(self):
        result = {'msg': self.message, 'error': self.kind}
        if self.endpoint:
            result['endpoint'] = self.endpoint
        if self.details:
            result['error_details'] = self.details
        return result


def scrub(text, secrets):
    """Replace every secret that occurs in ``text`` with a mask."""
    if text is None:
        return text
    if isinstance(text, bytes):
        text = text.decode('utf-8', 'replace')
    text = str(text)
    for secret in secrets or ():
        if secret:
            text = text.replace(secret, MASK)
    return text


# Reply classification --------------------------------------------------------------------------

_REPLY_KINDS = (
    # (kind, regular expression on the server's reply, case-insensitive)
    ('noperm', r'^NOPERM|has no permissions to'),
    ('auth', r'^(WRONGPASS|NOAUTH)|invalid password|invalid username-password|Authentication required'),
    ('busykey', r'^BUSYKEY|Target key name (already exists|is busy)'),
    ('payload', r'DUMP payload version or checksum are wrong|Bad data format|Unsupported foreign data type'),
    ('oom', r'^OOM |command not allowed when used memory'),
    ('db', r'DB index is out of range|invalid DB index'),
    ('readonly', r'^READONLY|read only replica'),
    ('loading', r'^LOADING|loading the dataset'),
    ('ioerr', r'^IOERR'),
    ('nokey', r'^NOKEY'),
    ('wrongtype', r'^WRONGTYPE'),
    ('moved', r'^(MOVED|ASK|CROSSSLOT|CLUSTERDOWN)'),
    ('unknown_command', r'unknown command|unknown subcommand'),
)


# redis-py strips the error code of these replies and raises a class instead.
_CLASS_KINDS = (
    ('NoPermissionError', 'noperm'),
    ('AuthenticationError', 'auth'),
    ('OutOfMemoryError', 'oom'),
    ('ReadOnlyError', 'readonly'),
    ('BusyLoadingError', 'loading'),
)


def reply_kind(reply):
    """Classify one server error reply (exception or text) into a short kind word."""
    for cls in type(reply).__mro__ if isinstance(reply, Exception) else ():
        for name, kind in _CLASS_KINDS:
            if cls.__name__ == name:
                return kind
    text = str(reply)
    for kind, pattern in _REPLY_KINDS:
        if re.search(pattern, text, re.IGNORECASE):
            return kind
    return 'error'


def noperm_command(text):
    """The command a NOPERM reply names, e.g. ``restore`` (None when it names none)."""
    match = re.search(r"run the '([^']+)' command", str(text))
    if match:
        return match.group(1)
    match = re.search(r"NOPERM.*?'([^']+)'", str(text))
    return match.group(1) if match else None


# Client exceptions -> KVError --------------------------------------------------------------------

def _root_causes(exc):
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def classify(exc, endpoint, action=None, connecting=False):
    """Turn any exception raised while talking to ``endpoint`` into a :class:`KVError`.

    ``endpoint`` is an :class:`~._connection.Endpoint` (for its address, user, TLS settings
    and secrets).  ``action`` is a short phrase such as ``"RESTORE into db 3"``.  ``connecting``
    says the error came while opening the connection (where a closed socket hints at TLS).
    """
    if isinstance(exc, KVError):
        return exc
    where = endpoint.address
    user = endpoint.username or 'default'
    secrets = endpoint.secrets
    raw = scrub(exc, secrets)
    prefix = '%s: ' % action if action else ''
    causes = _root_causes(exc)

    def err(kind, text):
        return KVError(scrub('%s%s (%s)' % (prefix, text, where), secrets), kind=kind, endpoint=where,
                       details={'server_reply': raw[:300]} if raw else None)

    # TLS first: a certificate or handshake failure arrives wrapped in a ConnectionError.
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return err('tls', 'TLS certificate verification failed: %s. Give the CA that signed the server '
                       'certificate as ca_cert, set server_name to a name the certificate holds, or (tests only) '
                       'set validate_certs=false' % _short(cause))
    for cause in causes:
        text = str(cause)
        if 'CERTIFICATE_VERIFY_FAILED' in text or 'certificate verify failed' in text:
            return err('tls', 'TLS certificate verification failed: %s. Give the CA that signed the server '
                       'certificate as ca_cert, set server_name to a name the certificate holds, or (tests only) '
                       'set validate_certs=false' % text.strip().rstrip('.'))
        if isinstance(cause, ssl.SSLError) or 'SSL' in text:
            if 'WRONG_VERSION_NUMBER' in text or 'wrong version number' in text or 'record layer failure' in text:
                return err('tls', 'TLS handshake failed: the server does not speak TLS on this port. '
                           'Set tls=false (or use a redis:// url), or use the TLS port')
            if 'CERTIFICATE_REQUIRED' in text or 'certificate required' in text.lower() \
                    or 'HANDSHAKE_FAILURE' in text:
                return err('tls', 'TLS handshake failed: the server requires a client certificate. '
                           'Give client_cert and client_key')
            if 'EOF occurred in violation of protocol' in text or 'UNEXPECTED_EOF' in text:
                return err('tls', 'TLS handshake failed: the server closed the connection during the handshake. '
                           'It most likely requires a client certificate: give client_cert and client_key')
            if isinstance(cause, ssl.SSLError):
                return err('tls', 'TLS handshake failed: %s' % _short(cause))
    if rexc is not None:
        if isinstance(exc, rexc.AuthenticationError) or reply_kind(raw) == 'auth':
            if 'NOAUTH' in raw or 'Authentication required' in raw:
                return err('auth', 'authentication required: the server wants a password; '
                           'give password (and username for an ACL user)')
            if 'without any password configured' in raw:
                return err('auth', 'a password was given but the server has none configured for the default '
                           'user: remove password, or give the username of an ACL user')
            return err('auth', 'authentication failed for user %r: the password is wrong, or the user does not '
                       'exist or is disabled. Check username and password (the server does not say which)' % user)
        if isinstance(exc, rexc.NoPermissionError) or reply_kind(raw) == 'noperm':
            command = noperm_command(raw)
            if command:
                return err('noperm', "user %r may not run the '%s' command: grant it, e.g. "
                           "ACL SETUSER %s +%s" % (user, command, user, command.replace(' ', '|')))
            return err('noperm', 'user %r lacks a permission: %s. Grant the command, category or key pattern '
                       'with ACL SETUSER' % (user, raw))
        if reply_kind(raw) == 'db':
            return err('db', 'db %s does not exist on this server (see its "databases" setting); '
                       'choose an existing db index' % (endpoint.db,))
        if reply_kind(raw) == 'oom':
            return err('oom', 'the server is out of memory (used_memory reached maxmemory): raise maxmemory '
                       'or choose a larger target')
        if isinstance(exc, rexc.TimeoutError) or any(isinstance(c, socket.timeout) for c in causes):
            if endpoint.tls:
                hint = ' (with tls=true: if the server does not speak TLS on this port, set tls=false)'
            else:
                hint = ' (if the server requires TLS, set tls=true)'
            return err('timeout', 'timed out talking to the server: check host, port, firewall and '
                       'connect_timeout/socket_timeout%s' % hint)
        if isinstance(exc, rexc.ConnectionError):
            for cause in causes:
                if isinstance(cause, ConnectionRefusedError) or 'Connection refused' in str(cause):
                    return err('refused', 'connection refused: nothing listens there. Check host and port, '
                               'and that the server is running')
                if isinstance(cause, socket.gaierror) or 'Name or service not known' in str(cause):
                    return err('unreachable', 'cannot resolve the host name %r: check host' % endpoint.host)
                if isinstance(cause, FileNotFoundError) or 'No such file or directory' in str(cause):
                    return err('refused', 'no unix socket at this path: check url')
            closed = 'closed by server' in raw or 'reset by peer' in raw or 'Broken pipe' in raw
            if closed and connecting and not endpoint.tls:
                return err('tls', 'the server closed the connection: it probably requires TLS. '
                           'Set tls=true (or use a rediss:// url)')
            if closed:
                return err('unreachable', 'the connection was lost: the server closed it (did it stop or '
                           'restart?)')
            return err('unreachable', 'cannot connect: %s' % raw)
        if isinstance(exc, rexc.ResponseError):
            kind = reply_kind(raw)
            return err(kind, 'the server replied with an error: %s' % raw)
    if isinstance(exc, (OSError, IOError)):
        return err('io', 'I/O error: %s' % raw)
    return err('error', '%s: %s' % (type(exc).__name__, raw))


# Failures a rerun can get past once the cause is gone (a server back up, space freed).
RERUNNABLE = ('unreachable', 'timeout', 'refused', 'loading', 'io', 'oom', 'interrupted', 'failover')


def rerun_hint(checkpoint):
    """What a rerun of a copy does: resume from ``checkpoint`` when there is one, else compare and skip."""
    if checkpoint:
        return 'Rerun with the same checkpoint (%s) to resume' % checkpoint
    return 'Rerun to finish: keys already copied are found identical and skipped'


def unavailable(exc):
    """Why a command cannot be used, when ``exc`` says it is renamed, disabled or denied (else None).

    Managed plans rename or remove admin commands (``rename-command CONFIG ""``) or deny them by ACL; what
    such a command would have told is then unknown, which is not an error in itself.
    """
    kind = reply_kind(exc)
    text = str(exc)
    if kind == 'noperm':
        command = noperm_command(text)
        return 'denied to this user%s' % (" ('%s')" % command if command else '')
    if kind == 'unknown_command' or re.search(r"Command '?[^']*'? not found|unknown command", text, re.IGNORECASE):
        return 'not available on the server (renamed or disabled)'
    return None


def write_error(path, exc):
    """The :class:`KVError` (kind ``io``) for an ``OSError`` raised while writing the file ``path``."""
    reason = getattr(exc, 'strerror', None) or str(exc)
    return KVError('cannot write %s: %s. Free space on that filesystem (or fix its permissions) or choose another '
                   'path' % (path, reason), kind='io', details={'path': path, 'errno': getattr(exc, 'errno', None)})


def _short(exc):
    text = getattr(exc, 'verify_message', None) or getattr(exc, 'reason', None) or str(exc)
    return str(text).strip().rstrip('.')
