"""login.sealed: a pending login sealed for the browser opens only with its key, for its state, intact and in
time; anything else is None, never an exception. The key is the serving key's, the same however it is
written."""

from __future__ import annotations

import base64
import json
import os

import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kube_oidc_proxy.login.cookies import set_cookie
from kube_oidc_proxy.login.pending import LIFETIME_SECONDS, PendingLogin
from kube_oidc_proxy.login.sealed import INFO, MAX_TEXT, NONCE_BYTES, VERSION, derive_key, seal, unseal
from kube_oidc_proxy.oidcclient import new_pkce, random_token

T0 = 1_700_000_000.0
KEY = os.urandom(32)
STATE = random_token()
LOGIN = PendingLogin(
    STATE,
    random_token(),
    new_pkce().verifier,
    "https://keycloak.example.com/realms/main",
    "https://kube.example.com/login/callback",
    T0 + LIFETIME_SECONDS,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sealed_body(body: object, state: str = STATE, key: bytes = KEY) -> str:
    """What ``seal`` would make of any body: as if someone with the key had sealed it."""
    nonce = os.urandom(NONCE_BYTES)
    plain = json.dumps(body).encode()
    return b64(bytes([VERSION]) + nonce + AESGCM(key).encrypt(nonce, plain, bytes([VERSION]) + state.encode()))


def test_a_sealed_login_opens_as_it_was_with_its_key_and_state() -> None:
    text = seal(KEY, LOGIN)
    assert unseal(KEY, text, STATE, T0) == LOGIN
    assert unseal(KEY, text, STATE, T0 + LIFETIME_SECONDS - 0.001) == LOGIN
    assert seal(KEY, LOGIN) != text, "a fresh nonce each time"


def test_the_sealed_text_hides_what_it_holds_and_fits_a_cookie() -> None:
    text = seal(KEY, LOGIN)
    assert text.isascii() and all(c.isalnum() or c in "-_" for c in text)
    for secret in (LOGIN.state, LOGIN.nonce, LOGIN.verifier, "keycloak", "kube.example"):
        assert secret not in text and secret.encode() not in unb64(text)
    header = set_cookie(STATE, text)
    assert len(text) < 600 and len(header) < 700, (len(text), len(header))


def test_the_longest_host_and_a_long_issuer_still_fit_in_a_cookie() -> None:
    host = ".".join(["a" * 63] * 3) + "." + "b" * 61 + ":65535"  # hosts.MAX_NAME and a port
    login = PendingLogin(
        STATE, LOGIN.nonce, LOGIN.verifier, "https://" + "i" * 500, f"https://{host}/login/callback", LOGIN.expires_at
    )
    text = seal(KEY, login)
    assert len(text) <= MAX_TEXT
    assert unseal(KEY, text, STATE, T0) == login
    name, _, value = set_cookie(STATE, text).partition(b";")[0].partition(b"=")
    assert len(name) + len(value) < 2048


def test_the_longest_value_unseal_takes_fits_the_browsers_4096_bytes_with_its_name() -> None:
    name_and_value = set_cookie(STATE, "A" * MAX_TEXT).partition(b";")[0]
    assert len(name_and_value) <= 4096 - 512


def test_it_expires_at_its_expiry_not_a_moment_later() -> None:
    text = seal(KEY, LOGIN)
    assert unseal(KEY, text, STATE, LOGIN.expires_at) is None
    assert unseal(KEY, text, STATE, LOGIN.expires_at + 3600) is None


def test_another_key_opens_nothing() -> None:
    text = seal(KEY, LOGIN)
    assert unseal(os.urandom(32), text, STATE, T0) is None


def test_a_blob_sealed_for_another_state_opens_for_no_other() -> None:
    text = seal(KEY, LOGIN)
    for other in (random_token(), STATE[:-1], STATE + "x", "", STATE.upper()):
        assert unseal(KEY, text, other, T0) is None


def test_a_body_naming_another_state_is_refused_even_when_it_opens() -> None:
    body = {"s": "other", "n": "n", "v": "v", "i": "i", "r": "r", "e": T0 + 60}
    assert unseal(KEY, sealed_body(body), STATE, T0) is None
    body["s"] = STATE
    assert unseal(KEY, sealed_body(body), STATE, T0) == PendingLogin(STATE, "n", "v", "i", "r", T0 + 60)


def test_a_flipped_bit_in_any_byte_is_refused() -> None:
    raw = unb64(seal(KEY, LOGIN))
    for index in range(len(raw)):
        for bit in (0x01, 0x80):
            tampered = bytearray(raw)
            tampered[index] ^= bit
            assert unseal(KEY, b64(bytes(tampered)), STATE, T0) is None, index


def test_any_changed_character_is_refused() -> None:
    text = seal(KEY, LOGIN)
    for index in range(len(text)):
        other = "B" if text[index] == "A" else "A"
        assert unseal(KEY, text[:index] + other + text[index + 1 :], STATE, T0) is None, index


def test_every_truncation_and_extension_is_refused() -> None:
    text = seal(KEY, LOGIN)
    for length in range(len(text)):
        assert unseal(KEY, text[:length], STATE, T0) is None, length
    raw = unb64(text)
    for extra in (b"\x00", b"x" * 16):
        assert unseal(KEY, b64(raw + extra), STATE, T0) is None
    assert unseal(KEY, text + "A", STATE, T0) is None


def test_another_version_is_refused() -> None:
    raw = bytearray(unb64(seal(KEY, LOGIN)))
    for version in (0, 2, 255):
        raw[0] = version
        assert unseal(KEY, b64(bytes(raw)), STATE, T0) is None


def test_padding_or_another_spelling_of_the_same_bytes_is_refused() -> None:
    text = seal(KEY, LOGIN)
    assert unseal(KEY, text + "=" * (-len(text) % 4 or 4), STATE, T0) is None
    raw = unb64(text)
    standard = base64.b64encode(raw).rstrip(b"=").decode()
    if standard != text:  # "+" and "/" for "-" and "_"
        assert unseal(KEY, standard, STATE, T0) is None
    # the same bytes with the unused low bits of the last character set: base64 decoders accept it
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    spare = {2: 4, 3: 2}.get(len(text) % 4)
    if spare:
        last = alphabet.index(text[-1])
        respelled = text[:-1] + alphabet[last | ((1 << spare) - 1)]
        if respelled != text:
            assert unb64(respelled) == raw
            assert unseal(KEY, respelled, STATE, T0) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "A",
        "AAAA",
        "A" * 43,
        "not base64!",
        "%41%41%41%41",
        "AAAA=AAAA",
        "é" * 40,
        "\x00" * 64,
        " " + "A" * 60,
        "A" * (MAX_TEXT + 1),
        "A" * 1_000_000,
        b64(b"\x01" + b"\x00" * 200),
        b64(b"\x01" + os.urandom(12 + 16)),
        b64(os.urandom(500)),
        "eyJzIjoiYSJ9",  # a plain JSON body, never sealed
    ],
)
def test_garbage_is_refused_without_an_exception(text: str) -> None:
    assert unseal(KEY, text, STATE, T0) is None


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "text",
        {},
        {"s": STATE, "n": "n", "v": "v", "i": "i", "r": "r"},
        {"s": STATE, "n": "n", "v": "v", "i": "i", "r": "r", "e": T0 + 60, "x": 1},
        {"s": STATE, "n": 1, "v": "v", "i": "i", "r": "r", "e": T0 + 60},
        {"s": STATE, "n": "n", "v": None, "i": "i", "r": "r", "e": T0 + 60},
        {"s": STATE, "n": "n", "v": "v", "i": "i", "r": "r", "e": "soon"},
        {"s": STATE, "n": "n", "v": "v", "i": "i", "r": "r", "e": True},
        {"s": STATE, "n": "n", "v": "v", "i": "i", "r": "r", "e": 1e400},
    ],
)
def test_a_body_of_another_shape_is_refused_even_when_it_opens(body: object) -> None:
    assert unseal(KEY, sealed_body(body), STATE, T0) is None


def test_a_body_that_is_not_json_is_refused() -> None:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(KEY).encrypt(nonce, b"\xff\xfe not json", bytes([VERSION]) + STATE.encode())
    assert unseal(KEY, b64(bytes([VERSION]) + nonce + sealed), STATE, T0) is None


def test_a_hostile_state_is_only_another_state() -> None:
    text = seal(KEY, LOGIN)
    for state in ("\ud800", "\x00", "é" * 1000, "a" * 100_000):
        assert unseal(KEY, text, state, T0) is None
    odd = PendingLogin("\ud800é\x00", "n", "v", "i", "r", T0 + 60)
    assert unseal(KEY, seal(KEY, odd), "\ud800é\x00", T0) == odd


# -- the key --------------------------------------------------------------------------------------------------


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, fmt: str) -> bytes:
    formats = {
        "pkcs8": serialization.PrivateFormat.PKCS8,
        "traditional": serialization.PrivateFormat.TraditionalOpenSSL,
    }
    return key.private_bytes(serialization.Encoding.PEM, formats[fmt], serialization.NoEncryption())


def test_the_key_is_32_bytes_fixed_by_the_private_key_and_the_logins_info() -> None:
    issued = trustme.CA().issue_cert("kube.example.com")
    key = derive_key(issued.private_key_pem.bytes())
    assert len(key) == 32
    assert key == derive_key(issued.private_key_pem.bytes())
    assert key != derive_key(trustme.CA().issue_cert("kube.example.com").private_key_pem.bytes())
    assert INFO.startswith(b"kube-oidc-proxy browser login")


@pytest.mark.parametrize(
    "private",
    [
        rsa.generate_private_key(65537, 2048),
        ec.generate_private_key(ec.SECP256R1()),
        ed25519.Ed25519PrivateKey.generate(),
    ],
    ids=["rsa", "ec", "ed25519"],
)
def test_the_same_private_key_however_written_gives_the_same_key(
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
) -> None:
    pkcs8 = pem(private, "pkcs8")
    key = derive_key(pkcs8)
    if not isinstance(private, ed25519.Ed25519PrivateKey):  # PKCS#8 is its only PEM
        assert derive_key(pem(private, "traditional")) == key
    certificate = trustme.CA().cert_pem.bytes()
    assert derive_key(certificate + pkcs8) == key, "a key file that holds the certificate too"
    assert derive_key(pkcs8 + certificate) == key
    assert derive_key(pkcs8.replace(b"\n", b"\r\n")) == key


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a pem",
        trustme.CA().cert_pem.bytes(),  # a certificate, no key
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"password"),
        ),
    ],
    ids=["empty", "text", "certificate", "broken", "encrypted"],
)
def test_a_file_without_a_usable_private_key_is_a_value_error(content: bytes) -> None:
    with pytest.raises(ValueError, match="private key"):
        derive_key(content)
