"""A real daemon wired to the QuickBooks simulator on a real port, and helpers to drive the OAuth flow."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sovterm.sim.qbo import QBOSimState, endpoints, seed_company
from tests.support.daemon import DaemonProcess
from tests.support.sims import run_qbo_sim

CLIENT_ID = "e2e-client"
CLIENT_SECRET = "e2e-client-secret-9f8e7d"
REALM = "9341450000000042"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass
class QBOEnv:
    daemon: DaemonProcess
    sim: QBOSimState
    outputs: list[str] = field(default_factory=list)

    @property
    def callback_url(self) -> str:
        return f"{self.daemon.url}/oauth/qbo/callback"

    @property
    def db_path(self) -> Path:
        return self.daemon.root / "data" / "sovterm.db"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = self.daemon.cli(*args)
        self.outputs += [result.stdout, result.stderr]
        return result

    def cli_json(self, *args: str) -> dict:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def authorization_url(self) -> str:
        result = self.cli("setup", "qbo", "--no-wait")
        assert result.returncode == 0, result.stderr
        return authorization_url_in(result.stdout)

    def get(self, url: str) -> tuple[int, str]:
        """What a browser does: follow redirects, return the final status and page."""
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def consent(self, url: str) -> str:
        """Open Intuit's (simulated) consent page; return where it redirects, without following."""
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            opener.open(url, timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 302, exc.read()
            return exc.headers["Location"]
        raise AssertionError("the consent page did not redirect")

    def connect(self) -> None:
        status, page = self.get(self.authorization_url())
        assert status == 200 and "QuickBooks connected" in page, page

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(self.db_path, timeout=10) as conn:
            rows = conn.execute(query, params).fetchall()
        conn.close()
        return rows

    def sim_secrets(self) -> set[str]:
        """Every token, code and the client secret the simulator has handed out or knows."""
        return ({CLIENT_SECRET} | set(self.sim.refresh_tokens) | set(self.sim.access_tokens)
                | set(self.sim.codes))

    def assert_no_secrets_leaked(self) -> None:
        logs = "".join(p.read_text(errors="replace") for p in (self.daemon.root / "data" / "logs").glob("*"))
        assert logs, "the daemon log is empty: nothing was checked"
        shown = "\n".join(self.outputs)
        for value in self.sim_secrets():
            assert value not in logs, "a token reached the daemon log"
            assert value not in shown, "a token reached CLI output"


def authorization_url_in(text: str) -> str:
    return next(line.strip() for line in text.splitlines() if "/connect/oauth2?" in line)


@pytest.fixture
def qbo_env(daemon_factory, tmp_path: Path) -> Iterator[QBOEnv]:
    sim = QBOSimState(seed=11)
    seed_company(sim, REALM)
    base_url, stop = run_qbo_sim(sim)
    secret_file = tmp_path / "qbo-client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    settings = {"client_id": CLIENT_ID, "client_secret_file": str(secret_file), "environment": "sandbox",
                "request_timeout_s": 5, **endpoints(base_url)}
    daemon = daemon_factory(extra={"qbo": settings}, start=False)
    sim.register_client(CLIENT_ID, CLIENT_SECRET, [f"{daemon.url}/oauth/qbo/callback"])
    daemon.start()
    try:
        yield QBOEnv(daemon, sim)
    finally:
        daemon.kill()
        stop()
