"""Configuration: file, environment overrides, systemd/XDG defaults, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovterm.config import load_settings
from sovterm.errors import ConfigError


def test_file_then_environment_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('data_dir = "/srv/a"\n[listener]\nport = 9000\npublic_url = "https://pay.example.com/"\n')
    s = load_settings(cfg, {"SOVTERM_LISTENER__PORT": "9100", "SOVTERM_SYNC__WORKERS": "2", "HOME": "/h"})
    assert s.listener.port == 9100 and s.sync.workers == 2
    assert s.public_url == "https://pay.example.com"
    assert s.qbo_redirect_uri == "https://pay.example.com/oauth/qbo/callback"
    assert s.source == str(cfg)


def test_config_env_var_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[reaper]\ninterval_s = 45\n")
    s = load_settings(None, {"SOVTERM_CONFIG": str(cfg), "HOME": "/h", "STATE_DIRECTORY": "/var/lib/x"})
    assert s.reaper.interval_s == 45 and s.data_dir == Path("/var/lib/x")


def test_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", {})


def test_systemd_directories_are_the_defaults(tmp_path: Path) -> None:
    s = load_settings(tmp_path / "absent.toml" if False else None, {
        "STATE_DIRECTORY": "/var/lib/sovterm", "RUNTIME_DIRECTORY": "/run/sovterm", "LOGS_DIRECTORY": "/var/log/sovterm",
    })
    assert s.data_dir == Path("/var/lib/sovterm")
    assert s.socket_path == Path("/run/sovterm/control.sock")
    assert s.log_dir == Path("/var/log/sovterm")


def test_errors_name_key_value_and_what_is_valid(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[listener]\nport = "eighty"\n[sync]\nworkerz = 3\n[qbo]\nclient_secret = "s3cret-value"\nclient_secret_file = "/x"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, {"HOME": "/h"})
    text = str(err.value)
    assert "listener.port = 'eighty'" in text and "valid integer" in text
    assert "sync.workerz: unknown key" in text
    assert "client_secret or client_secret_file, not both" in text
    assert "s3cret-value" not in text


def test_toml_syntax_error_points_at_the_line(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[listener]\nport = \n")
    with pytest.raises(ConfigError, match="not valid TOML.*line 2"):
        load_settings(cfg, {})


def test_unreadable_client_secret_file_named(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[qbo]\nclient_secret_file = "{tmp_path / "missing"}"\n')
    with pytest.raises(ConfigError, match="qbo.client_secret_file: cannot read"):
        load_settings(cfg, {"HOME": "/h"})


def test_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "systemd" / "sovterm.example.toml"
    s = load_settings(example, {"HOME": "/h"})
    assert s.listener.port == 8080
