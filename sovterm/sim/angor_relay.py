"""A local Nostr relay for tests and the demo: `nostr-relay` (PyPI, 1.14) as a subprocess on loopback, and
publishing events to any relay over aiohttp websockets.

The relay is configured without its own signature check (`nostr_relay.validators.is_signed`), so that a
forged event can be stored and served, as a careless or hostile relay would: sovterm must drop it itself."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp


def relay_command() -> str | None:
    """The `nostr-relay` executable beside this Python, or on PATH; None when the package is not installed."""
    beside = Path(sys.executable).parent / "nostr-relay"
    return str(beside) if beside.exists() else shutil.which("nostr-relay")


class LocalRelay:
    def __init__(self, root: Path, port: int) -> None:
        self.root = root
        self.port = port
        self.url = f"ws://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> LocalRelay:
        command = relay_command()
        if command is None:
            raise RuntimeError("the nostr-relay package is not installed")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "relay.yaml"
        config.write_text(json.dumps({  # YAML is a superset of JSON
            "DEBUG": False, "relay_name": "sovterm local relay",
            "storage": {"sqlalchemy.url": f"sqlite+aiosqlite:///{self.root / 'relay.sqlite3'}",
                        "validators": ["nostr_relay.validators.is_not_too_large"]},
            "gunicorn": {"bind": f"127.0.0.1:{self.port}", "workers": 1, "loglevel": "warning", "reload": False},
        }))
        log = open(self.root / "relay.log", "wb")  # noqa: SIM115 - lives as long as the relay
        # HOME: gunicorn keeps its control socket under ~/.gunicorn
        self.process = subprocess.Popen([command, "-c", str(config), "serve"], cwd=self.root, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True,
                                        env={**os.environ, "HOME": str(self.root)})
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/", headers={"Accept": "application/nostr+json"})
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nostr-relay exited ({self.process.returncode}); see {self.root / 'relay.log'}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(request, timeout=1) as resp:
                    if json.loads(resp.read()).get("supported_nips"):
                        return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError("nostr-relay did not start in time")

    def stop(self) -> None:
        """Killed with its process group at once: its database lives in a directory that is thrown away, and
        gunicorn's graceful stop takes seconds the test suite does not have."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


async def publish(url: str, events: list[dict[str, Any]], timeout_s: float = 10.0) -> list[tuple[str, bool, str]]:
    """Send each event (NIP-01 EVENT) and collect the relay's OK answers: (id, accepted, message)."""
    answers = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=2)) as ws:
        for event in events:
            await ws.send_str(json.dumps(["EVENT", event]))
            while True:
                frame = json.loads((await ws.receive(timeout_s)).data)
                if frame[0] == "OK":
                    answers.append((frame[1], bool(frame[2]), frame[3] if len(frame) > 3 else ""))
                    break
    return answers
