"""An independent OPC UA server (asyncua, FreeOpcUa's Python stack) with a small plant model,
for plcprobe's integration tests and benchmarks. Loopback only.

    asyncua_server.py PORT PKI_DIR [--cert valid|expired|wronghost] [--trusted-clients]
    asyncua_server.py --make-user-cert DIR CN     write DIR/user.der and DIR/user-key.pem

The server certificate is valid, expired, or valid for another host only (wronghost).
By default any client application certificate is accepted. With --trusted-clients the server
trusts only the client certificates in PKI_DIR/trusted/ (DER or PEM, read again at every
CreateSession, as a server whose administrator moves a certificate to its trusted list): any
other is refused with BadCertificateUntrusted and written to PKI_DIR/rejected/ (as real
servers keep what they refused, for the administrator to trust).

Endpoints: None and Basic256Sha256 SignAndEncrypt, at opc.tcp://127.0.0.1:PORT/peer/.
Identities: anonymous; user `tech` with password `secret42`; and X.509 user certificates whose
common name is `plcprobe-user-ok` (any other common name is refused).
Model (namespace urn:plcprobe:peer:plant, index 2):
  Objects/Plant/Line1/Speed    ns=2;s=Line1.Speed    Double, moves every 100 ms
  Objects/Plant/Line1/Count    ns=2;s=Line1.Count    Int32, +1 every 100 ms
  Objects/Plant/Line1/Running  ns=2;s=Line1.Running  Boolean
  Objects/Plant/Line1/Setpoint ns=2;s=Line1.Setpoint Double, writable
The server certificate (DER) is written to PKI_DIR/server.der so tests can compare thumbprints.
Prints "READY" on stdout once it accepts connections.
"""

import asyncio
import datetime
import ipaddress
import logging
import math
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import UserManager
from asyncua.crypto.permission_rules import User, UserRole

APP_URI = "urn:plcprobe:peer"
NAMESPACE = "urn:plcprobe:peer:plant"


USER_CN_PREFIX = "plcprobe-user"


class Users(UserManager):
    def get_user(self, iserver, username=None, password=None, certificate=None):
        if isinstance(password, bytes):
            password = password.decode("utf-8", "replace")
        if username is None and certificate:
            # An X.509 identity, or an anonymous one on a secured channel (then `certificate`
            # is the client's application certificate): tell them apart by the common name.
            cn = x509.load_der_x509_certificate(bytes(certificate)).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            cn = cn[0].value if cn else ""
            if cn.startswith(USER_CN_PREFIX):
                return User(role=UserRole.Admin, name=cn) if cn == USER_CN_PREFIX + "-ok" else None
        if username is None:
            return User(role=UserRole.Admin)
        if username == "tech" and password == "secret42":
            return User(role=UserRole.Admin, name="tech")
        return None


def make_cert(pki, kind, cn="plcprobe peer", stem="server"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.datetime.now(datetime.timezone.utc)
    if kind == "expired":
        start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=365)
    if kind == "wronghost":
        hosts = [x509.DNSName("elsewhere.example")]
    else:
        hosts = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "asyncua test peer")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(
            [x509.UniformResourceIdentifier(APP_URI)] + hosts), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=True,
                                     key_encipherment=True, data_encipherment=True,
                                     key_agreement=False, key_cert_sign=True, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                              ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(pki, exist_ok=True)
    cert_path, key_path = os.path.join(pki, f"{stem}.der"), os.path.join(pki, f"{stem}-key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.DER))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.TraditionalOpenSSL,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def trusted_clients_only(server, pki):
    """Require client application certificates from PKI_DIR/trusted/ (see the module doc)."""
    trusted, rejected = os.path.join(pki, "trusted"), os.path.join(pki, "rejected")
    os.makedirs(trusted, exist_ok=True)
    os.makedirs(rejected, exist_ok=True)
    store = TrustStore([trusted], [])
    validator = CertificateValidator(
        CertificateValidatorOptions.TRUSTED | CertificateValidatorOptions.PEER_CLIENT, store)

    async def validate(cert, app):
        try:
            if not any(n.lower().endswith((".der", ".pem")) for n in os.listdir(trusted)):
                raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)  # trusts no one yet
            await store.load_trust()
            await validator.validate(cert, app)
        except ServiceError:
            name = cert.fingerprint(hashes.SHA1()).hex() + ".der"
            with open(os.path.join(rejected, name), "wb") as f:
                f.write(cert.public_bytes(serialization.Encoding.DER))
            raise

    server.set_certificate_validator(validate)


async def main():
    port, pki = int(sys.argv[1]), sys.argv[2]
    kind = sys.argv[sys.argv.index("--cert") + 1] if "--cert" in sys.argv else "valid"
    logging.basicConfig(level=logging.ERROR)
    cert_path, key_path = make_cert(pki, kind)
    server = Server(user_manager=Users())
    await server.init()
    if "--trusted-clients" in sys.argv:
        trusted_clients_only(server, pki)
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/peer/")
    server.set_server_name("plcprobe asyncua peer")
    await server.set_application_uri(APP_URI)
    server.set_security_policy([
        ua.SecurityPolicyType.NoSecurity,
        ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
    ])
    server.set_identity_tokens([ua.AnonymousIdentityToken, ua.UserNameIdentityToken,
                                ua.X509IdentityToken])
    await server.load_certificate(cert_path)
    await server.load_private_key(key_path)
    idx = await server.register_namespace(NAMESPACE)
    plant = await server.nodes.objects.add_object(ua.NodeId("Plant", idx), ua.QualifiedName("Plant", idx))
    line = await plant.add_object(ua.NodeId("Line1", idx), ua.QualifiedName("Line1", idx))
    speed = await line.add_variable(ua.NodeId("Line1.Speed", idx), ua.QualifiedName("Speed", idx), 12.5, ua.VariantType.Double)
    count = await line.add_variable(ua.NodeId("Line1.Count", idx), ua.QualifiedName("Count", idx), 0, ua.VariantType.Int32)
    await line.add_variable(ua.NodeId("Line1.Running", idx), ua.QualifiedName("Running", idx), True, ua.VariantType.Boolean)
    setpoint = await line.add_variable(ua.NodeId("Line1.Setpoint", idx), ua.QualifiedName("Setpoint", idx), 40.0, ua.VariantType.Double)
    await setpoint.set_writable()
    async with server:
        print("READY", flush=True)
        n = 0
        while True:
            await asyncio.sleep(0.1)
            n += 1
            await count.write_value(n, ua.VariantType.Int32)
            await speed.write_value(12.5 + math.sin(n / 10.0), ua.VariantType.Double)


if __name__ == "__main__":
    if sys.argv[1] == "--make-user-cert":
        make_cert(sys.argv[2], "valid", cn=sys.argv[3], stem="user")
    else:
        asyncio.run(main())
