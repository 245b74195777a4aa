"""The pure parts of the 402 gate: macaroons, credentials, the directory guard, the `[[paywall]]` config."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovterm.config import load_settings
from sovterm.errors import ConfigError
from sovterm.paywall import challenge as wire
from sovterm.paywall.macaroon import Grant, MacaroonRefused, key_id, mint, parse, preimage_matches, verify
from sovterm.paywall.upstream import file_in

KEY = os.urandom(32)
PREIMAGE = os.urandom(32)
GRANT = Grant(hashlib.sha256(PREIMAGE).digest(), "paywall:weather", 385_000, 2_000_000_000, "S1", "INV1",
              wire.NETWORKS["bc"])


def test_a_macaroon_proves_its_grant_and_nothing_else() -> None:
    mac = mint(GRANT, "0a0b0c0d", KEY)
    assert key_id(mac) == "0a0b0c0d"
    got = verify(mac, KEY, now=1_999_999_999)
    assert (got.resource, got.amount_msat, got.invoice, got.network) == ("paywall:weather", 385_000, "INV1",
                                                                          wire.NETWORKS["bc"])
    assert preimage_matches(got, PREIMAGE) and not preimage_matches(got, os.urandom(32))
    with pytest.raises(MacaroonRefused, match="expired"):
        verify(mac, KEY, now=2_000_000_000)
    with pytest.raises(MacaroonRefused, match="bad signature"):
        verify(mac, os.urandom(32), now=0)  # another key (a rotated-away one, or a forger's)


def _attenuate(mac: bytes, caveat: bytes) -> bytes:
    """What any holder can do: append a first-party caveat and extend the HMAC chain."""
    identifier, caveats, sig = parse(mac)
    body = mac[:mac.rindex(b"\x00\x06")]  # up to the end of the caveats
    new_sig = hmac.new(sig, caveat, hashlib.sha256).digest()
    return body + b"\x02" + bytes([len(caveat)]) + caveat + b"\x00" + b"\x00\x06\x20" + new_sig


def test_caveats_only_narrow() -> None:
    mac = mint(GRANT, "0a0b0c0d", KEY)
    assert verify(_attenuate(mac, b"valid_until=1900000000"), KEY, now=1_800_000_000).valid_until == 1_900_000_000
    with pytest.raises(MacaroonRefused, match="expired"):
        verify(_attenuate(mac, b"valid_until=1900000000"), KEY, now=1_950_000_000)
    assert verify(_attenuate(mac, b"valid_until=2100000000"), KEY, now=0).valid_until == 2_000_000_000
    with pytest.raises(MacaroonRefused, match="conflicting"):
        verify(_attenuate(mac, b"resource=paywall:other"), KEY, now=0)
    with pytest.raises(MacaroonRefused, match="unknown caveat"):
        verify(_attenuate(mac, b"ip=1.2.3.4"), KEY, now=0)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_is_refused_never_crashes(data: bytes) -> None:
    with pytest.raises(MacaroonRefused):
        verify(data, KEY, now=0)


def test_any_flipped_bit_is_refused() -> None:
    mac = mint(GRANT, "0a0b0c0d", KEY)
    signed_from = 1 + 2 + len(b"sovterm")  # the location hint is not signed (macaroon semantics); the rest is
    for position in range(signed_from, len(mac)):
        for bit in (1, 0x80):
            flipped = bytearray(mac)
            flipped[position] ^= bit
            with pytest.raises(MacaroonRefused):
                verify(bytes(flipped), KEY, now=0)


def test_credentials_from_each_header_form() -> None:
    mac = mint(GRANT, "0a0b0c0d", KEY)
    b64 = wire._b64(mac)
    for header in (f"L402 {b64}:{PREIMAGE.hex()}", f"LSAT {b64}:{wire._b64(PREIMAGE)}",
                   f'L402 macaroon="{b64}":{PREIMAGE.hex()}'):
        cred = wire.credential(header, None)
        assert cred is not None and (cred.macaroon, cred.preimage) == (mac, PREIMAGE), header
    assert wire.credential("Bearer abc", None) is None and wire.credential(None, None) is None
    for bad in ("L402 onlytoken", f"L402 {b64}:abcd", "L402 :" + PREIMAGE.hex(), "L402 " + "A" * 9000 + ":00"):
        with pytest.raises(MacaroonRefused, match="malformed credential"):
            wire.credential(bad, None)
    with pytest.raises(MacaroonRefused, match="malformed credential"):
        wire.credential(None, wire._b64(b'{"x402Version": 2, "payload": {}}'))


def test_the_directory_guard(tmp_path: Path) -> None:
    root = tmp_path / "files"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "index.html").write_text("i")
    (tmp_path / "secret.txt").write_text("s")
    (root / "escape").symlink_to(tmp_path / "secret.txt")
    assert file_in(root, "a.txt") == (root / "a.txt").resolve()
    assert file_in(root, "sub/") == (root / "sub" / "index.html").resolve()
    for tail in ("../secret.txt", "sub/../../secret.txt", "/etc/passwd", "escape", "a.txt\x00.png", "..\\secret.txt",
                 "missing", ""):
        assert file_in(root, tail) is None, tail


def test_paywall_config_errors_name_the_key_and_the_fix(tmp_path: Path) -> None:
    def load(entry: str) -> None:
        path = tmp_path / "c.toml"
        path.write_text("[[paywall]]\n" + entry)
        load_settings(path, {"SOVTERM_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)})

    cases = {
        'name = "w"\npath = "/api/"\nprice = "1"\ncurrency = "USD"\nupstream = "http://10.0.0.5/"':
            "paywall.0.upstream = 'http://10.0.0.5/': must be an http:// URL on this machine",
        'name = "w"\npath = "/pay/x/"\nprice_sats = 5\ndirectory = "/srv"': "paywall.0.path = '/pay/x/': overlaps",
        'name = "w"\npath = "/api/"\nprice = "1"\ndirectory = "/srv"': "a fiat price needs currency",
        'name = "w"\npath = "/api/"\nprice_sats = 5': "give either upstream (a loopback URL) or directory",
        'name = "w"\npath = "/api/"\nprice = "-1"\ncurrency = "USD"\ndirectory = "/srv"': "must be a positive decimal",
        'name = "w"\npath = "/api/"\nprice_sats = 5\ndirectory = "srv"': "must be an absolute path",
    }
    for entry, expected in cases.items():
        with pytest.raises(ConfigError) as err:
            load(entry)
        assert expected in str(err.value), (entry, str(err.value))
        assert "fix:" in str(err.value)
