"""Throwaway certificates for TLS tests (the `cryptography` package), and TLS test clients."""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support.clients import DEFAULT_TIMEOUT, TcpClient

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_key(kind: str = "ec") -> PrivateKey:
    """P-256 by default (made in microseconds); "rsa" for a 2048-bit RSA key."""
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class Issued:
    """A certificate and its key, as files."""

    cert_file: Path
    key_file: Path
    der: bytes  # the certificate, as a TLS peer receives it

    def write_to(self, cert_file: Path, key_file: Path) -> None:
        """Put this certificate in place of others, each file replaced in one rename."""
        for src, dst in ((self.cert_file, cert_file), (self.key_file, key_file)):
            tmp = dst.with_suffix(".new")
            tmp.write_bytes(src.read_bytes())
            os.replace(tmp, dst)


class Pki:
    """A test certificate authority in a folder: ``ca.pem`` to trust, and certificates."""

    def __init__(self, folder: Path, kind: str = "ec") -> None:
        self.folder = folder
        self.kind = kind
        self.key = new_key(kind)
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name("webchat test CA"))
            .issuer_name(_name("webchat test CA"))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = folder / "ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        name: str,
        hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
        self_signed: bool = False,
    ) -> Issued:
        """A server certificate for ``hosts``, signed by this CA (or by its own key)."""
        key = new_key(self.kind)
        now = datetime.datetime.now(datetime.UTC)
        sans: list[x509.GeneralName] = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .issuer_name(_name(hosts[0]) if self_signed else self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        )
        if not self_signed:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        cert = builder.sign(key if self_signed else self.key, hashes.SHA256())
        cert_file = self.folder / f"{name}.crt"
        key_file = self.folder / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_file.chmod(0o600)
        return Issued(cert_file, key_file, cert.public_bytes(serialization.Encoding.DER))

    def client_context(self) -> ssl.SSLContext:
        """What a careful client uses: this CA trusted, the host name checked."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def tls_tcp_client(
    port: int, context: ssl.SSLContext, server_hostname: str = "localhost"
) -> TcpClient:
    """A TcpClient whose socket speaks TLS (handshake done, within the default timeout)."""
    client = TcpClient(port)
    client.sock = context.wrap_socket(client.sock, server_hostname=server_hostname)
    return client


def peer_certificate(port: int, context: ssl.SSLContext, host: str = "localhost") -> bytes:
    """The DER certificate a new TLS connection to ``port`` is shown."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        der = sock.getpeercert(binary_form=True)
    assert der is not None
    return der
