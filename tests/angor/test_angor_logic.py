"""Angor's pure parts: event verification (checked against aionostr's, the relay package's own verifier),
npub decoding (NIP-19's vector), ProjectInfo v1/v2, progress and stage amounts, follow references."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
from aionostr.event import Event

from sovterm.angor.monitor import AngorError, parse_ref
from sovterm.angor.nostr import hex_to_npub, npub_to_hex, verified
from sovterm.angor.project import parse_project_info, percent, phase, stage_rows
from sovterm.config import load_settings
from sovterm.errors import ConfigError
from sovterm.sim.angor import forged, make_project, signed_event

NOW = 1_800_000_000


def _aionostr_verifies(event: dict) -> bool:
    try:
        return bool(Event(**event).verify())
    except Exception:  # aionostr raises on some malformed events instead of answering False
        return False


def test_signature_and_id_checks_agree_with_an_independent_verifier() -> None:
    secret = bytes(range(1, 33))
    good = signed_event(secret, 3030, '{"a":1}', [["d", "x"]], NOW)
    other = signed_event(bytes(range(2, 34)), 0, "{}", [], NOW)
    cases = {
        "good": good,
        "content changed, id recomputed, signature kept": forged(good, content='{"a":2}'),
        "content changed, id kept": {**good, "content": '{"a":2}'},
        "someone else's signature": {**good, "sig": other["sig"]},
        "author swapped": forged(good, pubkey=other["pubkey"]),
        "unicode content": signed_event(secret, 0, json.dumps({"name": "Café ₿"}, ensure_ascii=False), [], NOW),
    }
    for name, event in cases.items():
        assert verified(event) == _aionostr_verifies(event), name
    assert verified(good) and verified(cases["unicode content"])
    assert not any(verified(e) for n, e in cases.items() if n not in ("good", "unicode content"))
    assert not verified({**good, "sig": "zz" * 64}) and not verified({"id": good["id"]}) and not verified([1])


def test_npub_round_trip_with_the_nip19_vector() -> None:
    npub = "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"
    key = "7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e"
    assert npub_to_hex(npub) == key and hex_to_npub(key) == npub
    with pytest.raises(ValueError, match="not an npub"):
        npub_to_hex(npub[:-1] + "q")  # checksum broken


def test_project_info_versions_and_figures() -> None:
    project = make_project(random.Random(1), NOW, name="X", target_sats=3_000_000, investors=3, raised_sats=1_000_001)
    v2 = parse_project_info(json.dumps({**project.info, "projectType": 1}))
    assert v2 is not None and v2.project_type == 1 and v2.network_name == "Bitcoin"
    v1 = {k: v for k, v in project.info.items() if k not in ("version", "projectType", "networkName", "endDate")}
    legacy = parse_project_info(json.dumps({**v1, "projectType": 2}))  # no version: always Invest
    assert legacy is not None and (legacy.version, legacy.project_type) == (1, 0)
    assert parse_project_info("a kind 3030 from another app") is None
    assert parse_project_info(json.dumps({"projectIdentifier": "angor1x"})) is None

    assert percent(1_000_001, 3_000_000) == Decimal("33.33") and percent(5, 0) is None
    rows = stage_rows(legacy, 1_000_001, now=project.info["stages"][0]["releaseDate"])
    assert [r["release_sats"] for r in rows] == [300_000, 300_000, 400_000]  # rounded down, never more
    assert [r["released"] for r in rows] == [True, False, False]
    assert phase(legacy, project.info["startDate"] - 1) == "upcoming"
    assert phase(legacy, project.info["startDate"]) == "open"
    assert phase(legacy, project.info["stages"][0]["releaseDate"]) == "stages"
    assert phase(legacy, project.info["expiryDate"]) == "ended"


def test_follow_references() -> None:
    npub = "npub10elfcs4fr0l0r8af98jlmgdh9c8tcxjvz9qkw038js35mp4dma8qzvjptg"
    key = npub_to_hex(npub)
    assert parse_ref(npub) == (npub, "founder", key)
    assert parse_ref(key.upper()) == (npub, "founder", key)
    assert parse_ref(" angor1azzmfx8n7w2tvrdl3yvhhjgc8pcvt3hf2v2alf ")[1] == "project"
    with pytest.raises(AngorError, match="neither an Angor project id"):
        parse_ref("bitcoin:bc1q...")
    with pytest.raises(AngorError, match="checksum"):
        parse_ref(npub[:-1] + "q")


def test_config_names_the_bad_angor_key_and_the_fix(tmp_path) -> None:
    config = tmp_path / "sovterm.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n[angor]\nindexer_url = "indexer.angor.io"\nrelays = []\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, {})
    text = str(caught.value)
    assert "angor.indexer_url = 'indexer.angor.io': " in text and "give one such as https://" in text
    assert "angor.relays" in text and "give at least one relay" in text
