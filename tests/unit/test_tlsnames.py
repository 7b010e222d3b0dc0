"""Go's --tls-min-version / --tls-cipher-suites vocabulary mapped to what OpenSSL understands."""

from __future__ import annotations

import ssl

import pytest

from kube_oidc_proxy.tlsnames import (
    CIPHER_SUITES,
    TLS13_SUITES,
    TLS_VERSIONS,
    openssl_cipher_string,
    unknown_cipher_suites,
)

# Suites this OpenSSL build refuses outright (3DES is compiled out of OpenSSL 3 by default).
_DISABLED_IN_OPENSSL = {"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"}


@pytest.mark.parametrize(
    ("go_name", "openssl_name"),
    [
        ("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"),
        ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"),
        ("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"),
        ("TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"),
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "DES-CBC3-SHA"),
    ],
)
def test_a_known_go_suite_name_maps_to_its_openssl_name(go_name: str, openssl_name: str) -> None:
    assert openssl_cipher_string((go_name,)) == openssl_name
    assert unknown_cipher_suites((go_name,)) == []


@pytest.mark.parametrize("go_name", sorted(set(CIPHER_SUITES) - _DISABLED_IN_OPENSSL))
def test_every_mapped_openssl_name_is_a_cipher_openssl_knows(go_name: str) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers(CIPHER_SUITES[go_name])
    tls12_names = {c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"}
    assert tls12_names == {CIPHER_SUITES[go_name]}


def test_several_suites_become_one_colon_separated_list_in_the_given_order_without_duplicates() -> None:
    names = (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",  # the same suite under Go's newer name
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
    )
    assert openssl_cipher_string(names) == "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:AES128-GCM-SHA256"


@pytest.mark.parametrize("tls13_name", sorted(TLS13_SUITES))
def test_a_tls_1_3_suite_name_is_accepted_and_ignored(tls13_name: str) -> None:
    assert unknown_cipher_suites((tls13_name,)) == []
    assert openssl_cipher_string((tls13_name,)) is None
    assert openssl_cipher_string((tls13_name, "TLS_RSA_WITH_AES_128_GCM_SHA256")) == "AES128-GCM-SHA256"


def test_no_suites_keeps_the_openssl_defaults() -> None:
    assert openssl_cipher_string(()) is None


@pytest.mark.parametrize(
    "bad",
    [
        "TLS_RSA_WITH_RC4_128_SHA",  # a Go name OpenSSL cannot do
        "ECDHE-RSA-AES128-GCM-SHA256",  # an OpenSSL name, not Go's
        "tls_ecdhe_rsa_with_aes_128_gcm_sha256",  # Go's names are case-sensitive
        "TLS_NOT_A_SUITE",
        "",
    ],
)
def test_an_unknown_suite_name_is_reported(bad: str) -> None:
    names = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", bad, "TLS_AES_128_GCM_SHA256")
    assert unknown_cipher_suites(names) == [bad]


def test_every_unknown_name_is_reported_in_order() -> None:
    assert unknown_cipher_suites(("B", "TLS_RSA_WITH_AES_128_GCM_SHA256", "A")) == ["B", "A"]


@pytest.mark.parametrize(
    ("go_name", "version"),
    [
        ("VersionTLS10", ssl.TLSVersion.TLSv1),
        ("VersionTLS11", ssl.TLSVersion.TLSv1_1),
        ("VersionTLS12", ssl.TLSVersion.TLSv1_2),
        ("VersionTLS13", ssl.TLSVersion.TLSv1_3),
    ],
)
def test_go_tls_version_names_map_to_ssl_versions(go_name: str, version: ssl.TLSVersion) -> None:
    assert TLS_VERSIONS[go_name] is version


def test_only_go_tls_version_names_are_known() -> None:
    assert set(TLS_VERSIONS) == {"VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13"}
