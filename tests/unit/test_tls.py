"""Serving TLS (SNI, hot reload that never serves a broken pair) and the client contexts, with real handshakes."""

from __future__ import annotations

import asyncio
import datetime
import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kube_oidc_proxy.config import ServingConfig, SNICertKey
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.server.tls import ServingTLS, certificate_names, client_context


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path
    serial: int


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def issue(ca: trustme.CA, directory: Path, name: str, *hosts: str) -> Pair:
    leaf = ca.issue_cert(*(hosts or ("proxy.example",)))
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    cert.write_bytes(b"".join(p.bytes() for p in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    serial = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number
    return Pair(cert, key, serial)


def swap_in(path: Path, source: Path) -> None:
    """Replace a file atomically with another's content (what a Secret volume update looks like)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(source.read_bytes())
    os.replace(tmp, path)


def serving(pair: Pair, *sni: SNICertKey, **options: Any) -> ServingTLS:
    return ServingTLS(
        ServingConfig(
            tls_cert_file=str(pair.cert),
            tls_private_key_file=str(pair.key),
            sni_cert_keys=tuple(sni),
            **options,
        )
    )


class TLSServer:
    """A small asyncio TLS server using ``tls.context``; ``handshake`` reports what a client saw."""

    def __init__(self, server: asyncio.Server, ca: trustme.CA) -> None:
        self.server = server
        self.port: int = server.sockets[0].getsockname()[1]
        self.ca = ca

    def client_ssl(self, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.ca.cert_pem.bytes().decode())
        ctx.check_hostname = False  # we look at which certificate came, the chain is still verified
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx

    async def handshake(self, sni: str | None, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLObject:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", self.port, ssl=self.client_ssl(max_version=max_version), server_hostname=sni or ""
        )
        sslobj: ssl.SSLObject = writer.get_extra_info("ssl_object")
        writer.close()
        await writer.wait_closed()
        return sslobj

    async def serial(self, sni: str | None = None) -> int:
        sslobj = await self.handshake(sni)
        der = sslobj.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


StartServer = Callable[[ServingTLS], Awaitable[TLSServer]]


async def _drain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()
    writer.close()


@pytest.fixture
async def start_server(ca: trustme.CA) -> AsyncIterator[StartServer]:
    servers: list[asyncio.Server] = []

    async def start(tls: ServingTLS) -> TLSServer:
        server = await asyncio.start_server(_drain, "127.0.0.1", 0, ssl=tls.context)
        servers.append(server)
        return TLSServer(server, ca)

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


# ---------------------------------------------------------------------------------------------------- loading


async def test_the_serving_certificate_is_loaded_and_served(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    pair = issue(ca, tmp_path, "default")
    tls = serving(pair)
    server = await start_server(tls)
    assert await server.serial() == pair.serial
    assert await server.serial("proxy.example") == pair.serial


async def test_h2_is_offered_in_alpn_unless_disabled(ca: trustme.CA, tmp_path: Path, start_server: StartServer) -> None:
    server = await start_server(serving(issue(ca, tmp_path, "default")))
    assert (await server.handshake("proxy.example")).selected_alpn_protocol() == "h2"
    without_h2 = await start_server(serving(issue(ca, tmp_path, "default"), http2=False))  # --disable-http2-serving
    assert (await without_h2.handshake("proxy.example")).selected_alpn_protocol() == "http/1.1"


@pytest.mark.parametrize("which", ["cert", "key"])
def test_a_missing_serving_file_is_a_startup_error_naming_it(ca: trustme.CA, tmp_path: Path, which: str) -> None:
    pair = issue(ca, tmp_path, "default")
    missing = tmp_path / f"missing.{which}"
    cfg = ServingConfig(
        tls_cert_file=str(missing if which == "cert" else pair.cert),
        tls_private_key_file=str(missing if which == "key" else pair.key),
    )
    with pytest.raises(StartupError) as exc:
        ServingTLS(cfg)
    assert str(missing) in str(exc.value)


def test_a_certificate_file_that_is_not_a_certificate_is_a_startup_error(ca: trustme.CA, tmp_path: Path) -> None:
    pair = issue(ca, tmp_path, "default")
    pair.cert.write_text("this is not a certificate\n")
    with pytest.raises(StartupError, match="cannot load certificate"):
        serving(pair)


def test_a_key_that_does_not_match_the_certificate_is_a_startup_error(ca: trustme.CA, tmp_path: Path) -> None:
    pair = issue(ca, tmp_path, "default")
    other = issue(ca, tmp_path, "other")
    with pytest.raises(StartupError, match=str(pair.cert)):
        ServingTLS(ServingConfig(tls_cert_file=str(pair.cert), tls_private_key_file=str(other.key)))


async def test_tls_min_version_13_refuses_a_tls_1_2_client(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    server = await start_server(serving(issue(ca, tmp_path, "default"), tls_min_version="VersionTLS13"))
    assert (await server.handshake("proxy.example")).version() == "TLSv1.3"
    with pytest.raises((ssl.SSLError, ConnectionResetError)):  # the server aborts the handshake
        await server.handshake("proxy.example", max_version=ssl.TLSVersion.TLSv1_2)


async def test_cipher_suites_limit_what_a_tls_1_2_client_can_negotiate(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    tls = serving(
        issue(ca, tmp_path, "default"),  # trustme issues ECDSA keys
        tls_cipher_suites=("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",),
    )
    server = await start_server(tls)
    sslobj = await server.handshake("proxy.example", max_version=ssl.TLSVersion.TLSv1_2)
    cipher = sslobj.cipher()
    assert cipher is not None
    assert cipher[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"


def test_cipher_suites_openssl_cannot_use_are_a_startup_error(ca: trustme.CA, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="--tls-cipher-suites"):
        serving(issue(ca, tmp_path, "default"), tls_cipher_suites=("TLS_RSA_WITH_3DES_EDE_CBC_SHA",))


# ---------------------------------------------------------------------------------------------------- reload


def test_reload_reports_no_change_when_the_files_are_unchanged(ca: trustme.CA, tmp_path: Path) -> None:
    tls = serving(issue(ca, tmp_path, "default"))
    assert tls.reload_if_changed() is False
    assert tls.reload_if_changed() is False
    assert tls.reloads == 0


async def test_a_new_pair_is_served_after_reload_to_clients_with_and_without_sni(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    old = issue(ca, tmp_path, "default")
    new = issue(ca, tmp_path / "next", "renewed")
    assert new.serial != old.serial
    tls = serving(old)
    server = await start_server(tls)
    assert await server.serial("proxy.example") == old.serial

    swap_in(old.cert, new.cert)
    swap_in(old.key, new.key)
    assert tls.reload_if_changed() is True
    assert tls.reloads == 1
    assert tls.reload_if_changed() is False

    assert await server.serial("proxy.example") == new.serial
    assert await server.serial(None) == new.serial


async def test_a_new_certificate_whose_key_does_not_match_keeps_the_old_pair(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    old = issue(ca, tmp_path, "default")
    new = issue(ca, tmp_path / "next", "renewed-half")
    tls = serving(old)
    server = await start_server(tls)

    swap_in(old.cert, new.cert)  # the Secret is half updated: new cert, old key
    assert tls.reload_if_changed() is False
    assert tls.reloads == 0
    assert await server.serial("proxy.example") == old.serial
    assert await server.serial(None) == old.serial

    swap_in(old.key, new.key)  # the rest arrives: now it loads
    assert tls.reload_if_changed() is True
    assert await server.serial("proxy.example") == new.serial


async def test_a_serving_file_that_disappears_keeps_the_current_pair(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    pair = issue(ca, tmp_path, "default")
    tls = serving(pair)
    server = await start_server(tls)
    pair.key.unlink()
    assert tls.reload_if_changed() is False
    assert await server.serial("proxy.example") == pair.serial


async def test_garbage_written_over_the_certificate_keeps_the_current_pair(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    pair = issue(ca, tmp_path, "default")
    tls = serving(pair)
    server = await start_server(tls)
    pair.cert.write_text("-----BEGIN CERTIFICATE-----\ntruncated")
    assert tls.reload_if_changed() is False
    assert await server.serial("proxy.example") == pair.serial


# ---------------------------------------------------------------------------------------------------- SNI


async def test_an_sni_certificate_is_served_for_its_domain_and_the_default_otherwise(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    default = issue(ca, tmp_path, "default", "proxy.example")
    other = issue(ca, tmp_path, "other", "other.example")
    tls = serving(default, SNICertKey(str(other.cert), str(other.key), ("other.example",)))
    server = await start_server(tls)
    assert await server.serial("other.example") == other.serial
    assert await server.serial("OTHER.example") == other.serial  # names are case-insensitive
    assert await server.serial(None) == default.serial
    assert await server.serial("proxy.example") == default.serial
    assert await server.serial("unknown.example") == default.serial


async def test_without_listed_domains_an_sni_certificate_serves_its_own_names_and_wildcards(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    default = issue(ca, tmp_path, "default", "proxy.example")
    named = issue(ca, tmp_path, "named", "api.example", "*.apps.example")
    tls = serving(default, SNICertKey(str(named.cert), str(named.key)))
    server = await start_server(tls)
    assert await server.serial("api.example") == named.serial
    assert await server.serial("console.apps.example") == named.serial
    assert await server.serial("a.b.apps.example") == default.serial  # a wildcard covers one label
    assert await server.serial("apps.example") == default.serial


async def test_listed_domains_replace_the_certificates_own_names(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    default = issue(ca, tmp_path, "default", "proxy.example")
    other = issue(ca, tmp_path, "other", "other.example")
    tls = serving(default, SNICertKey(str(other.cert), str(other.key), ("alias.example",)))
    server = await start_server(tls)
    assert await server.serial("alias.example") == other.serial
    assert await server.serial("other.example") == default.serial


async def test_the_first_sni_certificate_for_a_name_wins(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    default = issue(ca, tmp_path, "default", "proxy.example")
    first = issue(ca, tmp_path, "first", "shared.example")
    second = issue(ca, tmp_path, "second", "shared.example")
    tls = serving(
        default,
        SNICertKey(str(first.cert), str(first.key)),
        SNICertKey(str(second.cert), str(second.key)),
    )
    server = await start_server(tls)
    assert await server.serial("shared.example") == first.serial


async def test_an_sni_pair_is_reloaded_too(ca: trustme.CA, tmp_path: Path, start_server: StartServer) -> None:
    default = issue(ca, tmp_path, "default", "proxy.example")
    other = issue(ca, tmp_path, "other", "other.example")
    renewed = issue(ca, tmp_path / "next", "other-renewed", "other.example")
    tls = serving(default, SNICertKey(str(other.cert), str(other.key), ("other.example",)))
    server = await start_server(tls)
    swap_in(other.cert, renewed.cert)
    swap_in(other.key, renewed.key)
    assert tls.reload_if_changed() is True
    assert await server.serial("other.example") == renewed.serial
    assert await server.serial(None) == default.serial


def test_a_missing_sni_file_is_a_startup_error(ca: trustme.CA, tmp_path: Path) -> None:
    default = issue(ca, tmp_path, "default")
    with pytest.raises(StartupError, match=r"absent\.crt"):
        serving(default, SNICertKey(str(tmp_path / "absent.crt"), str(default.key)))


# ---------------------------------------------------------------------------------------------------- names


def test_certificate_names_are_the_dns_sans_lowercased_without_ip_addresses(ca: trustme.CA, tmp_path: Path) -> None:
    pair = issue(ca, tmp_path, "sans", "api.example", "*.apps.example", "127.0.0.1", "::1")
    assert certificate_names(str(pair.cert)) == ["api.example", "*.apps.example"]


def _self_signed(path: Path, subject_cn: str, sans: list[str]) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in sans]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_certificate_names_lowercase_mixed_case_sans(tmp_path: Path) -> None:
    _self_signed(tmp_path / "c.crt", "ignored.example", ["API.Example.COM"])
    assert certificate_names(str(tmp_path / "c.crt")) == ["api.example.com"]


def test_certificate_names_fall_back_to_the_common_name_without_sans(tmp_path: Path) -> None:
    _self_signed(tmp_path / "c.crt", "Legacy.Example", [])
    assert certificate_names(str(tmp_path / "c.crt")) == ["legacy.example"]


# ---------------------------------------------------------------------------------------------------- client side


@pytest.mark.parametrize(
    "bundle",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not a certificate", id="text"),
        pytest.param(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", id="bad-der"),
    ],
)
def test_a_ca_bundle_without_a_valid_certificate_is_a_startup_error_naming_its_use(bundle: bytes) -> None:
    with pytest.raises(StartupError) as exc:
        client_context(bundle, what="the OIDC issuer (--oidc-ca-file)")
    assert "--oidc-ca-file" in str(exc.value)
    assert "no valid certificate" in str(exc.value)


async def test_a_client_context_with_the_ca_verifies_the_server_and_its_name(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    server = await start_server(serving(issue(ca, tmp_path, "default", "proxy.example")))
    ctx = client_context(ca.cert_pem.bytes())
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is True
    _, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx, server_hostname="proxy.example")
    writer.close()
    await writer.wait_closed()
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx, server_hostname="wrong.example")


async def test_a_client_context_with_another_ca_rejects_the_server(
    ca: trustme.CA, tmp_path: Path, start_server: StartServer
) -> None:
    server = await start_server(serving(issue(ca, tmp_path, "default", "proxy.example")))
    ctx = client_context(trustme.CA().cert_pem.bytes())
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx, server_hostname="proxy.example")


def test_an_insecure_client_context_verifies_nothing() -> None:
    ctx = client_context(b"ignored", insecure=True)
    assert ctx.verify_mode == ssl.CERT_NONE
    assert ctx.check_hostname is False


def test_a_client_certificate_is_loaded_from_pem_bytes(ca: trustme.CA) -> None:
    leaf = ca.issue_cert("proxy-client")
    ctx = client_context(
        ca.cert_pem.bytes(),
        client_cert_pem=leaf.cert_chain_pems[0].bytes(),
        client_key_pem=leaf.private_key_pem.bytes(),
    )
    assert isinstance(ctx, ssl.SSLContext)


def test_a_client_certificate_with_the_wrong_key_is_a_startup_error(ca: trustme.CA) -> None:
    leaf, other = ca.issue_cert("proxy-client"), ca.issue_cert("someone-else")
    with pytest.raises(StartupError, match="client certificate for kube-apiserver"):
        client_context(
            ca.cert_pem.bytes(),
            client_cert_pem=leaf.cert_chain_pems[0].bytes(),
            client_key_pem=other.private_key_pem.bytes(),
        )
