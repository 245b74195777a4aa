"""A real nutshell mint (PyPI `cashu`, FakeWallet backend) as a subprocess on loopback, for the trusted-mint
health tests. It lives in its own venv (`.venv-mint`, or $SOVTERM_MINT_VENV): its pins (cashu 0.20.2 needs
marshmallow<4 and limits<5, see ../shared/notes/cashu-angor-l402.md) must not change the project's packages.
The venv is made once and reused; when it cannot be made the tests skip naming what is missing."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = Path(__file__).with_name("mint-requirements.txt")


def mint_venv() -> Path:
    """The venv holding nutshell's `mint` command, made (and cached) on first use."""
    venv = Path(os.environ.get("SOVTERM_MINT_VENV") or ROOT / ".venv-mint")
    stamp = venv / ".requirements"
    wanted = REQUIREMENTS.read_text()
    # several xdist workers may want it at once: one makes it, the others wait for the lock and reuse it
    with open(f"{venv}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / "bin" / "mint").exists() and stamp.exists() and stamp.read_text() == wanted:
            return venv
        try:
            subprocess.run(["python3", "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(REQUIREMENTS)], check=True,
                           capture_output=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"a nutshell mint (PyPI cashu 0.20.2 with marshmallow<4, limits<5) could not be "
                        f"installed into {venv}: {type(exc).__name__}")
        stamp.write_text(wanted)
    return venv


class NutshellMint:
    def __init__(self, venv: Path, workdir: Path, port: int) -> None:
        self.venv, self.workdir, self.port = venv, workdir, port
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{port}"

    def start(self, **env: str) -> NutshellMint:
        self.workdir.mkdir(parents=True, exist_ok=True)
        settings = {
            "MINT_LISTEN_HOST": "127.0.0.1", "MINT_LISTEN_PORT": str(self.port),
            "MINT_PRIVATE_KEY": "sovterm-test-mint-key-1", "MINT_BACKEND_BOLT11_SAT": "FakeWallet",
            "MINT_DATABASE": str(self.workdir / "data" / "mint"), "MINT_RATE_LIMIT": "false",
            "MINT_INPUT_FEE_PPK": "0", "FAKEWALLET_DELAY_INCOMING_PAYMENT": "0",
            "FAKEWALLET_DELAY_OUTGOING_PAYMENT": "0", "MINT_INFO_NAME": "sovterm-test-mint", **env,
        }
        base = {k: v for k, v in os.environ.items() if not k.startswith(("MINT_", "FAKEWALLET_"))}
        self.proc = subprocess.Popen(
            [str(self.venv / "bin" / "mint"), "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.workdir, env={**base, **settings, "HOME": str(self.workdir)},
            stdout=subprocess.DEVNULL, stderr=(self.workdir / "mint.log").open("ab"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the mint exited {self.proc.returncode}: "
                                   f"{(self.workdir / 'mint.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/v1/info", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise TimeoutError("the mint did not answer /v1/info within 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


if __name__ == "__main__":  # `python -m tests.mints.nutshell`: make the venv ahead of the tests
    print(mint_venv(), file=sys.stderr)
