"""Where the configuration file, the data directory and the control socket are, and the raw settings
read from the file and the environment before validation.

`sovterm.config` validates these into `Settings` with pydantic. A CLI command that only talks to the
daemon needs nothing but the socket path and takes it from here (`socket_path`), so it answers without
loading the daemon's stack: standard library and `sovterm.errors` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sovterm.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/sovterm/sovterm.toml")
ENV_PREFIX = "SOVTERM_"
ENV_CONFIG = "SOVTERM_CONFIG"
SYSTEM_SOCKET = Path("/run/sovterm/control.sock")


def default_data_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("STATE_DIRECTORY"):
        return Path(environ["STATE_DIRECTORY"].split(":")[0])
    if os.geteuid() == 0:
        return Path("/var/lib/sovterm")
    base = environ.get("XDG_STATE_HOME") or str(Path(environ.get("HOME", "~")).expanduser() / ".local/state")
    return Path(base) / "sovterm"


def default_socket(environ: Mapping[str, str], data_dir: Path) -> Path:
    """systemd's RuntimeDirectory; else the system daemon's socket if it exists (an operator's
    `sovterm tui` finds the systemd-run daemon); else a per-user runtime directory."""
    if environ.get("RUNTIME_DIRECTORY"):
        return Path(environ["RUNTIME_DIRECTORY"].split(":")[0]) / "control.sock"
    if os.geteuid() == 0 or SYSTEM_SOCKET.parent.is_dir():
        return SYSTEM_SOCKET
    if environ.get("XDG_RUNTIME_DIR"):
        return Path(environ["XDG_RUNTIME_DIR"]) / "sovterm" / "control.sock"
    return data_dir / "run" / "control.sock"


def config_path(explicit: str | Path | None, environ: Mapping[str, str]) -> tuple[Path, bool]:
    """The file to read and whether it must exist (it must if the operator named it)."""
    if explicit:
        return Path(explicit), True
    if environ.get(ENV_CONFIG):
        return Path(environ[ENV_CONFIG]), True
    return DEFAULT_CONFIG_PATH, False


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """`SOVTERM_LISTENER__PORT=9000` → {"listener": {"port": "9000"}}; `SOVTERM_DATA_DIR` → data_dir."""
    out: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        parts = name[len(ENV_PREFIX):].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_raw(path: str | Path | None, environ: Mapping[str, str], *, client: bool) -> dict[str, Any]:
    """The file (if any) merged with the environment, derived defaults filled, `source` saying where from.

    `client=True` (CLI and TUI) tolerates a default config file the operator may not read: a client
    only needs the socket path, which has its own default.
    """
    file, required = config_path(path, environ)
    raw: dict[str, Any] = {}
    source = "defaults"
    if file.exists() and client and not required and not os.access(file, os.R_OK):
        source = f"defaults ({file} is not readable by this user)"
    elif file.exists():
        import tomllib  # 10 ms, paid only when there is a file to read

        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML: {exc}", fix="correct the syntax at that line") from exc
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read: {exc.strerror}", fix="check the path and permissions") from exc
        source = str(file)
    elif required:
        raise ConfigError(f"config file {file} does not exist", fix="create it (see sovterm.example.toml) or fix the path")
    raw = _merge(raw, _env_overrides(environ))
    raw.setdefault("data_dir", str(default_data_dir(environ)))
    if environ.get("LOGS_DIRECTORY"):
        raw.setdefault("log_directory", environ["LOGS_DIRECTORY"].split(":")[0])
    raw["source"] = source
    return raw


def socket_path(path: str | Path | None, environ: Mapping[str, str]) -> Path:
    """The control socket a client connects to, resolved as `load_settings(..., client=True).socket_path`
    would, without validating the rest of the configuration (the daemon does that)."""
    raw = read_raw(path, environ, client=True)
    control = raw.get("control", {})
    if not isinstance(control, Mapping):
        raise ConfigError(f"control = {control!r}: must be a table", fix="write it as a [control] section")
    socket = control.get("socket")
    if socket is not None:
        if not isinstance(socket, str):
            raise ConfigError(f"control.socket = {socket!r}: must be a path", fix='write it as a string: socket = "/run/…"')
        return Path(socket)
    data_dir = raw["data_dir"]
    if not isinstance(data_dir, str):
        raise ConfigError(f"data_dir = {data_dir!r}: must be a path", fix='write it as a string: data_dir = "/var/…"')
    return default_socket(environ, Path(data_dir))
