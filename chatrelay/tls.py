"""TLS to relays, pinned as SimpleX pins its servers: a link names a relay's key
fingerprint beside its host (`f=`, `h=PIN@HOST`), and a client talks to that host only
over TLS with a certificate for that key, whoever signed it. Used by the SDK (connecting)
and the relay (making its certificate).

A pin is SHA-256 of the certificate's SubjectPublicKeyInfo: a certificate renewed with
the same key keeps every link true. A host with no pin is checked as any https host is
(the system's roots and the host name).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import ssl

from chatrelay import codec
from chatrelay.errors import ChatRelayError, MalformedError, Reason

PIN_SIZE = 32
PIN_CHARS = 43  # base64url of 32 bytes, unpadded
# The name in every relay's own certificate; a pinned client checks the key, not a name.
SERVER_NAME = "relay.chatrelay.invalid"
FETCH_TIMEOUT_S = 10.0


def parse_pin(text: str) -> bytes:
    try:
        pin = codec.unb64url(text, "relay key fingerprint")
    except MalformedError:
        raise ChatRelayError(Reason.BAD_LINK, "relay key fingerprint is not base64url") from None
    if len(pin) != PIN_SIZE:
        raise ChatRelayError(Reason.BAD_LINK, f"relay key fingerprint must be {PIN_SIZE} bytes")
    return pin


def render_pin(pin: bytes) -> str:
    return codec.b64url(pin)


def pin_of(cert_der: bytes) -> bytes:
    """The fingerprint of a certificate's public key."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError:
        raise MalformedError("relay certificate", "not DER X.509") from None
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).digest()


def pin_of_pem(cert_pem: bytes) -> bytes:
    return pin_of(ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii")))


def certificate(subject: str, key, issuer: str, issuer_key, not_after: datetime.datetime, *extensions):
    """An X.509 certificate for `key` named `subject`, signed by `issuer_key` (the same key
    for a self-signed one); `extensions`: (extension, critical) pairs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])
    builder = (
        x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1))
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(value) -> bytes:
    """A certificate or a private key as PEM (a key unencrypted, PKCS#8)."""
    from cryptography.hazmat.primitives import serialization

    if hasattr(value, "private_bytes"):
        return value.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return value.public_bytes(serialization.Encoding.PEM)


def make_certificate() -> tuple[bytes, bytes]:
    """(private key PEM, certificate PEM): a P-256 key and a self-signed certificate for
    SERVER_NAME that does not expire (RFC 5280's 99991231235959Z): the pin is what
    clients trust."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate(
        SERVER_NAME, key, SERVER_NAME, key, datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc),
        (x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), False),
        (x509.BasicConstraints(ca=True, path_length=0), True),
    )
    return pem(key), pem(cert)


def split_target(target: str) -> tuple[bytes | None, str]:
    """`[PIN@]HOST:PORT` (what the SDK keeps for a relay) -> (pin or None, HOST:PORT)."""
    pin_text, sep, address = target.rpartition("@")
    return (parse_pin(pin_text) if sep else None), address


def check_target(text: object, what: str) -> str:
    """`[PIN@]HOST:PORT` as another party gave it (a contact's reply queue), or MALFORMED:
    what the client will dial, checked before it is kept."""
    try:
        if not isinstance(text, str) or len(text) > 300:
            raise ValueError
        _, address = split_target(text)
        scheme, _, rest = address.partition(":")
        for one in rest.split(",") if scheme in ("ipv4", "ipv6") else [address]:  # one relay's gateways
            host, sep, port = one.rpartition(":")
            if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError
    except (ValueError, ChatRelayError):
        raise ChatRelayError(Reason.MALFORMED, f"{what} names no relay to reach ([PIN@]HOST:PORT)") from None
    return text


def join_target(pin: bytes | None, address: str) -> str:
    return f"{render_pin(pin)}@{address}" if pin else address


def failover_target(addresses: list[str]) -> str:
    """One gRPC target for several `HOST:PORT` (`[V6]:PORT`) of one service: where all are
    IP addresses of one family, gRPC's address list (pick_first, failing over from one to
    the next); otherwise the first."""
    def family(address: str) -> int:
        try:
            return ipaddress.ip_address(address.rpartition(":")[0].strip("[]")).version
        except ValueError:
            return 0
    families = {family(a) for a in addresses}
    if len(addresses) > 1 and families in ({4}, {6}):
        return f"ipv{families.pop()}:" + ",".join(addresses)
    return addresses[0]


def turned(target: str, turn: int) -> str:
    """`[PIN@]ipv4:A,B,…` with the gateway `turn` places on first (so a channel opened
    anew after one went away tries the next one first); any other target as it is."""
    pin, address = split_target(target)
    scheme, sep, rest = address.partition(":")
    if not sep or scheme not in ("ipv4", "ipv6") or "," not in rest:
        return target
    hosts = rest.split(",")
    k = turn % len(hosts)
    return join_target(pin, f"{scheme}:" + ",".join(hosts[k:] + hosts[:k]))


def _host_ports(address: str) -> list[tuple[str, int]]:
    """HOST:PORT, or gRPC's `ipv4:A:P,B:P` (the gateways of one relay), as (host, port)s."""
    for prefix in ("ipv4:", "ipv6:"):
        if address.startswith(prefix):
            return [pair for one in address[len(prefix):].split(",") for pair in _host_ports(one)]
    host, _, port = address.rpartition(":")
    return [(host.strip("[]"), int(port))]


async def fetch_certificate(address: str, timeout: float = FETCH_TIMEOUT_S, verify: bool = False) -> bytes:
    """The DER certificate a relay presents at HOST:PORT: unchecked (the caller checks its
    pin), or with `verify` checked as any https host's is (system roots, host name). A
    peer that does not speak TLS gets a clear refusal, not a gRPC timeout."""
    if address.startswith(("ipv4:", "ipv6:")):  # one relay's gateways: the first that answers
        errors = []
        for host, port in _host_ports(address):
            one = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            try:
                return await fetch_certificate(one, timeout, verify)
            except ChatRelayError as exc:
                if exc.reason is not Reason.UNAVAILABLE:
                    raise
                errors.append(exc)
        raise errors[-1]
    host, port = _host_ports(address)[0]
    if verify:
        context = ssl.create_default_context()
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    try:
        async with asyncio.timeout(timeout):  # not wait_for: a connection made as it is cancelled is closed
            _, writer = await asyncio.open_connection(host, port, ssl=context,
                                                      server_hostname=host if verify else SERVER_NAME)
    except ssl.SSLCertVerificationError as exc:
        raise ChatRelayError(Reason.RELAY_IDENTITY_MISMATCH, (
            f"the relay at {address} presented a certificate this client does not trust ({exc.verify_message}), "
            "and the link names no key fingerprint for it"
        )) from None
    except ssl.SSLError as exc:
        raise ChatRelayError(Reason.TLS_MISMATCH, (
            f"the relay at {address} does not answer TLS ({exc.reason or exc}); if it runs with "
            "--insecure, pass --insecure here too"
        )) from None
    except (OSError, asyncio.TimeoutError) as exc:
        raise ChatRelayError(Reason.UNAVAILABLE, f"relay {address} unreachable: {str(exc) or 'timed out'}") from None
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass
    if not der:
        raise ChatRelayError(Reason.RELAY_IDENTITY_MISMATCH, f"the relay at {address} presented no certificate")
    return der


async def speaks_tls(address: str, timeout: float = 3.0) -> bool:
    """Whether HOST:PORT completes a TLS handshake (to explain a plaintext call failing)."""
    try:
        await fetch_certificate(address, timeout)
        return True
    except ChatRelayError:
        return False


# Certificates whose pin was checked, by (address, pin): a client opening many channels
# to one relay checks it once per process.
_checked: dict[tuple[str, bytes], bytes] = {}


def forget(address: str, pin: bytes) -> None:
    _checked.pop((address, pin), None)


async def pinned_root(address: str, pin: bytes) -> bytes:
    """The PEM certificate the relay at `address` presents, once its key matched `pin`;
    gRPC then trusts that certificate alone, so a server without that key cannot finish
    a handshake, even one that swapped in after this check."""
    found = _checked.get((address, pin))
    if found is not None:
        return found
    der = await fetch_certificate(address)
    if pin_of(der) != pin:
        raise ChatRelayError(Reason.RELAY_IDENTITY_MISMATCH, (
            f"the relay at {address} presented a key with fingerprint {render_pin(pin_of(der))}, "
            f"not {render_pin(pin)} as its link says: another server is on that address"
        ))
    pem = ssl.DER_cert_to_PEM_cert(der).encode("ascii")
    _checked[(address, pin)] = pem
    return pem
