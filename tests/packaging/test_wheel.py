"""`pip install sovterm` from a built wheel into a clean virtualenv yields a working `sovterm`.

Builds the wheel from this checkout (hatchling comes from PyPI through pip's build isolation),
installs it with its dependencies into a fresh venv, then runs the installed entry point. Checks that
the non-Python files the code loads at run time (migrations, Textual styles) and the simulators that
`sovterm demo` needs are inside the wheel, compared against the source tree so a new file is covered.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PIP_TIMEOUT_S = 600
RUN_TIMEOUT_S = 60
NETWORK_TROUBLE = ("Could not find a version", "No matching distribution", "Failed to establish a new connection",
                   "Temporary failure in name resolution", "Network is unreachable", "ConnectTimeout")


def _env(home: Path) -> dict[str, str]:
    """A clean environment: nothing that steers sovterm or pip toward this checkout."""
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "LANG", "LC_ALL", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                     "no_proxy", "NO_PROXY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT", "SSL_CERT_FILE")}
    return {**keep, "HOME": str(home), "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1",
            "XDG_CACHE_HOME": os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))}


def _run(cmd: list[str], env: dict[str, str], timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _pip(cmd: list[str], env: dict[str, str], what: str, cwd: Path | None = None) -> None:
    result = _run(cmd, env, PIP_TIMEOUT_S, cwd)
    if result.returncode != 0:
        output = result.stdout + result.stderr
        if any(marker in output for marker in NETWORK_TROUBLE):
            pytest.skip(f"PyPI is not reachable, so {what} cannot fetch its packages: {output.strip()[-300:]}")
        pytest.fail(f"{what} failed:\n{output[-3000:]}")


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    env = _env(tmp_path)
    dist = tmp_path / "dist"
    _pip([sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(dist), str(REPO)], env,
         "building the wheel (pip wheel, hatchling)", cwd=tmp_path)
    wheels = list(dist.glob("sovterm-*.whl"))
    assert len(wheels) == 1, wheels
    names = set(zipfile.ZipFile(wheels[0]).namelist())

    source = REPO / "sovterm"
    wanted = [*source.glob("store/migrations/*.sql"), *source.rglob("*.tcss"), *source.glob("sim/*.py")]
    assert any(p.suffix == ".sql" for p in wanted) and any(p.suffix == ".tcss" for p in wanted)
    missing = sorted(str(p.relative_to(REPO)) for p in wanted if str(p.relative_to(REPO)) not in names)
    assert not missing, f"not in the wheel: {missing}"
    assert not any(n.startswith(("tests/", "sovterm/tests/")) for n in names)

    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(target)
    python = target / "bin" / "python"
    _pip([str(python), "-m", "pip", "install", "--no-input", str(wheels[0])], env,
         "installing the wheel with its dependencies", cwd=tmp_path)

    sovterm = str(target / "bin" / "sovterm")
    version = _run([sovterm, "version"], env, RUN_TIMEOUT_S, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"sovterm {_project_version()}"

    # `--config` belongs to `sovterm` itself, before the command
    check = _run([sovterm, "--config", str(REPO / "systemd" / "sovterm.example.toml"), "config", "check"],
                 env, RUN_TIMEOUT_S, cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "configuration OK" in check.stdout and "https://btcpay.example.com" in check.stdout

    # The installed package (not this checkout) finds its data files through importlib.resources.
    probe = _run([str(python), "-I", "-c", (
        "import sovterm, sovterm.store.db as db; from importlib import resources;"
        "print(sovterm.__file__); print(len(db.bundled_migrations()));"
        "print(all(resources.files('sovterm.tui').joinpath(n).is_file() for n in ('app.tcss',)));"
        "import sovterm.sim.btcpay, sovterm.sim.qbo"
    )], env, RUN_TIMEOUT_S, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    location, migrations, styles = probe.stdout.split()
    assert location.startswith(str(target)), location
    assert int(migrations) == len(list(source.glob("store/migrations/*.sql")))
    assert styles == "True"


def _project_version() -> str:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
