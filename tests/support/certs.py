"""Test-time TLS material: a CA, a server certificate for localhost/127.0.0.1, a client
certificate, and a second, unrelated CA for mismatch tests.  Made with the openssl CLI."""

import os
import subprocess


def _run(*args, cwd):
    subprocess.run(args, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _ca(d, name, subject):
    _run('openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
         '-keyout', name + '.key', '-out', name + '.crt', '-subj', subject, cwd=d)


def _leaf(d, name, ca, subject, ext):
    _run('openssl', 'req', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-keyout', name + '.key',
         '-out', name + '.csr', '-subj', subject, cwd=d)
    with open(os.path.join(d, name + '.ext'), 'w') as fh:
        fh.write(ext)
    _run('openssl', 'x509', '-req', '-in', name + '.csr', '-CA', ca + '.crt', '-CAkey', ca + '.key',
         '-CAcreateserial', '-days', '2', '-sha256', '-out', name + '.crt', '-extfile', name + '.ext', cwd=d)


def make_certs(d):
    """Create the files in directory ``d`` (absolute paths returned in a dict)."""
    d = os.path.abspath(d)
    os.makedirs(d, exist_ok=True)
    marker = os.path.join(d, 'client.crt')
    if not os.path.exists(marker):
        _ca(d, 'ca', '/CN=kvtools test CA')
        _ca(d, 'other-ca', '/CN=kvtools unrelated CA')
        _leaf(d, 'server', 'ca', '/CN=localhost',
              'subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:kv.test.internal\n'
              'extendedKeyUsage=serverAuth\n')
        _leaf(d, 'client', 'ca', '/CN=kvtools client', 'extendedKeyUsage=clientAuth\n')
    names = ('ca', 'other-ca', 'server', 'client')
    out = {}
    for n in names:
        out[n.replace('-', '_') + '_cert'] = os.path.join(d, n + '.crt')
        out[n.replace('-', '_') + '_key'] = os.path.join(d, n + '.key')
    return out
