"""dtls.cookie: stateless HelloVerifyRequest cookies (RFC 6347 4.2.1)."""

from __future__ import annotations

import pytest

from dtls.cookie import COOKIE_LENGTH, CookieSigner
from dtls.messages import ClientHello

ADDR = ("192.0.2.1", 40000)


def make_hello() -> ClientHello:
    return ClientHello(0xFEFD, bytes(32), cipher_suites=[0xC02B])


def test_cookie_survives_one_rotation_but_not_two() -> None:
    signer = CookieSigner(rotate_interval=10.0)
    hello = make_hello()
    hello.cookie = signer.make(ADDR, hello, 0.0)
    assert signer.check(ADDR, hello, 5.0)
    assert signer.check(ADDR, hello, 12.0)  # rotated once: previous secret
    assert not signer.check(ADDR, hello, 25.0)  # rotated twice: gone
    assert "secret" not in repr(signer)


def test_cookie_covers_the_client_parameters() -> None:
    signer = CookieSigner()
    hello = make_hello()
    hello.cookie = signer.make(ADDR, hello, 0.0)
    hello.random = b"\x01" * 32
    assert not signer.check(ADDR, hello, 0.0)


def test_cookie_is_bound_to_the_address() -> None:
    signer = CookieSigner()
    hello = make_hello()
    hello.cookie = signer.make(ADDR, hello, 0.0)
    assert len(hello.cookie) == COOKIE_LENGTH
    assert signer.check(ADDR, hello, 0.0)
    assert not signer.check(("192.0.2.1", 40001), hello, 0.0)


def test_cookie_ignores_extensions_and_the_cookie_itself() -> None:
    # RFC 6347 4.2.1 only requires version, random, session_id, suites and compression
    # to repeat; clients may legitimately change extensions.
    signer = CookieSigner()
    hello = make_hello()
    cookie = signer.make(ADDR, hello, 0.0)
    hello.extensions = []
    hello.cookie = cookie
    assert signer.check(ADDR, hello, 0.0)


def test_wrong_length_and_forged_cookies_fail() -> None:
    signer = CookieSigner()
    hello = make_hello()
    for cookie in (b"", b"x" * 31, b"x" * 32):
        hello.cookie = cookie
        assert not signer.check(ADDR, hello, 0.0)


def test_rotate_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CookieSigner(rotate_interval=0)
