"""The daemon's trusted mints through the CLI and the status surfaces, with a real nutshell mint."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.mints.nutshell import NutshellMint, mint_venv
from tests.support.daemon import free_port


def test_mints_cli_status_and_status_page_follow_a_real_mint(daemon_factory, tmp_path: Path) -> None:
    mint = NutshellMint(mint_venv(), tmp_path / "mint", free_port())
    try:
        mint.start()
        host = mint.url.split("://")[1]
        d = daemon_factory(start=False)
        d.config.write_text(d.config.read_text() + f'[mints]\ntrusted = ["{mint.url}"]\n')
        d.start()
        assert d.cli("mints", "check").returncode == 0
        listed = d.cli("mints", "--json")
        assert listed.returncode == 0, listed.stderr
        (m,) = json.loads(listed.stdout)
        assert (m["url"], m["state"], m["source"], m["version"]) == (mint.url, "ok", "config", "Nutshell/0.20.2")
        assert "first check: ok" in d.cli("mints").stdout

        mint.stop()
        assert d.cli("mints", "check").returncode == 1
        human = d.cli("mints")
        assert human.returncode == 1 and "DOWN" in human.stdout and "ok → down: unreachable" in human.stdout
        assert f"Cashu mint {host} is down" in d.cli("status").stdout
        with urllib.request.urlopen(d.url + "/status.json", timeout=10) as resp:
            page = json.loads(resp.read())
        assert any(a["key"] == f"mint.{host}.down" for a in page["alerts"])

        # the operator's own list: add, refused bad URL, remove; the config's mint cannot be removed here
        assert d.cli("mints", "add", "https://mint.example.invalid/").returncode == 0
        assert "https://mint.example.invalid" in d.cli("mints").stdout
        bad = d.cli("mints", "add", "ftp://nope")
        assert bad.returncode == 1 and "is not a mint URL" in bad.stderr
        assert d.cli("mints", "remove", "https://mint.example.invalid").returncode == 0
        refused = d.cli("mints", "remove", mint.url)
        assert refused.returncode == 1 and "[mints] trusted" in refused.stderr
    finally:
        mint.stop()
