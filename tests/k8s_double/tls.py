"""A throwaway certificate authority for the API double (cryptography package)."""

import datetime
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name, org=None):
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _write(path, data, mode=0o600):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chmod(path, mode)
    return path


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _builder(subject, issuer, public_key, days=2):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


class CertificateAuthority:
    """A self-signed CA that issues one server certificate and client certificates."""

    def __init__(self, directory, name="cflab-k8s-double-ca"):
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        self.cert = (_builder(subject, subject, self.key.public_key(), days=3)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                                  content_commitment=False, key_encipherment=False,
                                                  data_encipherment=False, key_agreement=False,
                                                  encipher_only=False, decipher_only=False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.ca_path = _write(os.path.join(directory, "%s.crt" % name),
                              self.cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def _issue(self, subject, extensions):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(subject, self.cert.subject, key.public_key())
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical=critical)
        return key, builder.sign(self.key, hashes.SHA256())

    def issue_server(self, stem="server"):
        """A server certificate valid for 127.0.0.1 and localhost; returns (cert_path, key_path)."""
        san = x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                           x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        key, cert = self._issue(_name("kube-apiserver"), [
            (san, False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        ])
        return self._save(stem, key, cert)

    def issue_client(self, user, group="system:masters", stem="client"):
        """A client certificate whose CN is the user name, as kube-apiserver reads it."""
        key, cert = self._issue(_name(user, group), [
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ])
        return self._save(stem, key, cert)

    def _save(self, stem, key, cert):
        cert_path = _write(os.path.join(self.directory, stem + ".crt"),
                           cert.public_bytes(serialization.Encoding.PEM), 0o644)
        key_path = _write(os.path.join(self.directory, stem + ".key"), _key_pem(key))
        return cert_path, key_path
