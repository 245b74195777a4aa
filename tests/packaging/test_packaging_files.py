"""Structural checks of the packaging files: systemd, container image, Umbrel, StartOS.

None of these artefacts can be built or installed in CI (no container engine, no
systemd as PID 1, no Deno), so these tests pin what each platform needs from them and
what they must agree on with each other and with the daemon's defaults.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
UNIT = SYSTEMD / "sovterm.service"
SYSUSERS = SYSTEMD / "sovterm.sysusers.conf"
EXAMPLE_CONFIG = SYSTEMD / "sovterm.example.toml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
UMBREL = REPO / "packaging" / "umbrel"
START9 = REPO / "packaging" / "start9"

# The listener's defaults and routes the packages rely on (see docs/packaging.md).
# Until sovterm.web exists this is the literal set; replace it with its route table.
LISTENER_HEALTH_PATHS = {"/healthz", "/readyz"}
CONTAINER_PORT = 8080
CONTAINER_DATA_DIR = "/data"
CONTAINER_SOCKET = "/data/run/control.sock"
ADMIN_GROUP = "sovterm-admin"
VIEWER_GROUP = "sovterm-viewer"

# Umbrel's app linter (getumbrel/umbrel-apps .tools/lint-apps.mjs).
UMBREL_REQUIRED_KEYS = {
    "manifestVersion", "id", "category", "name", "version", "tagline", "description",
    "developer", "website", "dependencies", "repo", "support", "port", "gallery", "path",
    "submitter", "submission",
}
UMBREL_CATEGORIES = {
    "ai", "automation", "bitcoin", "crypto", "developer", "files", "finance", "media",
    "networking", "social",
}
START9_REQUIRED_KEYS = {
    "id", "title", "version", "release-notes", "license", "wrapper-repo", "upstream-repo",
    "build", "description", "assets", "main", "health-checks", "config", "volumes",
    "interfaces", "dependencies", "backup", "migrations",
}


# ---------------------------------------------------------------- helpers


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as fh:
        return tomllib.load(fh)["project"]["version"]


def load_yaml(path: Path):
    yaml = pytest.importorskip(
        "yaml", reason="PyYAML is not installed (needs pyyaml in the [test] extra)"
    )
    return yaml.safe_load(path.read_text())


def parse_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """systemd unit as {section: [(key, value), ...]}; keys may repeat, order kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(key: str, section: str = "Service") -> list[str]:
    return [v for k, v in parse_unit(UNIT)[section] if k == key]


def unit_value(key: str, section: str = "Service") -> str:
    values = unit_values(key, section)
    assert len(values) == 1, f"{key}= appears {len(values)} times in [{section}]"
    return values[0]


def size_bytes(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    match = re.fullmatch(r"(\d+)([KMG]?)", text)
    assert match, f"not a size: {text!r}"
    return int(match.group(1)) * units.get(match.group(2), 1)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """Dockerfile as [(INSTRUCTION, arguments)], continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        word, _, rest = pending.partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    return instructions


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def env_pairs(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instructions:
        if word == "ENV":
            for token in shlex.split(rest):
                key, _, value = token.partition("=")
                env[key] = value
    return env


@pytest.fixture
def health_server():
    """A loopback HTTP server on port 0 whose /readyz answers the status in `state`."""
    state = {"readyz": 200}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status = state["readyz"] if self.path == "/readyz" else 404
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def child_env(port: int) -> dict[str, str]:
    """Environment for a health-check child: this Python first on PATH, the test port."""
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return {"PATH": path, "SOVTERM_LISTENER__PORT": str(port)}


def umbrel_manifest() -> dict:
    return load_yaml(UMBREL / "umbrel-app.yml")


def umbrel_compose() -> dict:
    return load_yaml(UMBREL / "docker-compose.yml")


def start9_manifest() -> dict:
    return load_yaml(START9 / "manifest.yaml")


# ---------------------------------------------------------------- systemd


def test_unit_is_type_notify_with_watchdog_and_restart():
    assert unit_value("Type") == "notify"
    assert unit_value("NotifyAccess") == "main"
    assert unit_value("WatchdogSec") == "30s"
    assert unit_value("Restart") == "on-failure"
    assert unit_value("ExecStart") == "/opt/sovterm/bin/sovterm daemon"
    assert unit_value("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert unit_value("WantedBy", "Install") == "multi-user.target"


def test_unit_runs_as_dedicated_user_with_managed_directories():
    assert unit_value("User") == "sovterm"
    # The socket's group: viewers and admins (who are in both groups) can reach it.
    assert unit_value("Group") == VIEWER_GROUP
    assert unit_value("UMask") == "0077"
    assert unit_value("StateDirectory") == "sovterm"
    assert unit_value("StateDirectoryMode") == "0700"
    assert unit_value("RuntimeDirectory") == "sovterm"
    assert unit_value("RuntimeDirectoryMode") == "0750"
    assert unit_value("LogsDirectory") == "sovterm"
    assert "DynamicUser" not in dict(parse_unit(UNIT)["Service"])


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("ProtectProc", "invisible"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("RemoveIPC", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("SystemCallArchitectures", "native"),
        ("SystemCallErrorNumber", "EPERM"),
    ],
)
def test_unit_hardening_directive(key, expected):
    assert unit_value(key) == expected


def test_unit_syscall_filter_and_memory_limits():
    filters = unit_values("SystemCallFilter")
    assert "@system-service" in filters
    assert "~@privileged @resources" in filters
    assert size_bytes(unit_value("MemoryHigh")) < size_bytes(unit_value("MemoryMax"))
    assert int(unit_value("TasksMax")) > 0


def test_unit_takes_qbo_secret_from_a_systemd_credential():
    cred_id, _, source = unit_value("LoadCredential").partition(":")
    assert source == "/etc/sovterm/qbo-client-secret"
    env = dict(v.split("=", 1) for v in unit_values("Environment"))
    # %d is $CREDENTIALS_DIRECTORY (systemd.unit(5)); the secret never enters the env.
    assert env["SOVTERM_QBO__CLIENT_SECRET_FILE"] == f"%d/{cred_id}"
    assert env["SOVTERM_CONFIG"] == "/etc/sovterm/sovterm.toml"
    assert not any("SECRET=" in v and "FILE" not in v for v in unit_values("Environment"))


def _verifiable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an existing binary: verify checks it exists."""
    true_bin = shutil.which("true")
    assert true_bin
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={true_bin}", UNIT.read_text())
    copy = tmp_path / "sovterm.service"
    copy.write_text(text)
    return copy


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian package: systemd)",
)
def test_unit_passes_systemd_analyze_verify(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "verify", str(_verifiable_unit(tmp_path))],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    # Unknown or malformed directives are only warnings (exit 0) but land on stderr.
    assert result.stderr.strip() == ""


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (Debian package: systemd)",
)
def test_unit_security_exposure_stays_low(tmp_path):
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(_verifiable_unit(tmp_path))],
        capture_output=True, text=True, timeout=30,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    if match is None:
        pytest.skip(f"this systemd-analyze has no offline security check: {result.stderr[:200]}")
    assert float(match.group(1)) <= 2.0


def _sysusers_entries() -> list[list[str]]:
    return [
        shlex.split(line)
        for line in SYSUSERS.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def test_sysusers_declares_the_unit_user_and_both_groups():
    entries = _sysusers_entries()
    users = {e[1] for e in entries if e[0] == "u"}
    groups = {e[1] for e in entries if e[0] == "g"}
    assert unit_value("User") in users
    assert {ADMIN_GROUP, VIEWER_GROUP} <= groups
    assert unit_value("Group") in groups | users
    user_line = next(e for e in entries if e[0] == "u" and e[1] == "sovterm")
    assert user_line[-1] == "/usr/sbin/nologin"


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None,
    reason="systemd-sysusers not installed (Debian package: systemd)",
)
def test_sysusers_file_is_accepted_by_systemd_sysusers(tmp_path):
    (tmp_path / "etc").mkdir()
    result = subprocess.run(
        ["systemd-sysusers", "--dry-run", f"--root={tmp_path}", str(SYSUSERS)],
        capture_output=True, text=True, timeout=30,
    )
    if result.returncode != 0 and "Permission denied" in result.stderr:
        pytest.skip("systemd-sysusers cannot read the temporary root as this user")
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "Creating user 'sovterm'" in output
    for group in (ADMIN_GROUP, VIEWER_GROUP):
        assert f"Creating group '{group}'" in output


def test_example_config_parses_and_matches_the_defaults():
    config = tomllib.loads(EXAMPLE_CONFIG.read_text())
    assert config["listener"] == {"host": "127.0.0.1", "port": CONTAINER_PORT}
    assert config["control"] == {"admin_group": ADMIN_GROUP, "viewer_group": VIEWER_GROUP}
    assert config["btcpay"]["url"].startswith(("http://", "https://"))
    assert config["qbo"]["environment"] in {"sandbox", "production"}
    # Secrets never live in the config file.
    assert "client_secret" not in config["qbo"]
    # data_dir and the socket default to the unit's StateDirectory/RuntimeDirectory.
    assert "data_dir" not in config
    assert "socket" not in config["control"]


# ---------------------------------------------------------------- container image


def test_dockerfile_is_multi_stage_with_a_wheel_builder():
    instructions = dockerfile_instructions(DOCKERFILE)
    froms = [rest for word, rest in instructions if word == "FROM"]
    assert len(froms) >= 2
    assert froms[0].endswith(" AS builder")
    assert any(word == "RUN" and "pip wheel" in rest for word, rest in instructions)
    assert any(
        word == "COPY" and rest.startswith("--from=builder")
        for word, rest in final_stage(instructions)
    )
    assert re.search(r"python:3\.1[12]-slim", DOCKERFILE.read_text())


def test_dockerfile_runtime_is_non_root_with_data_volume():
    runtime = final_stage(dockerfile_instructions(DOCKERFILE))
    users = [rest for word, rest in runtime if word == "USER"]
    assert users and users[-1].split(":")[0] == "1000"
    volumes = [rest for word, rest in runtime if word == "VOLUME"]
    assert volumes == [f'["{CONTAINER_DATA_DIR}"]']
    assert ("EXPOSE", str(CONTAINER_PORT)) in runtime
    env = env_pairs(runtime)
    assert env["SOVTERM_DATA_DIR"] == CONTAINER_DATA_DIR
    assert env["SOVTERM_LISTENER__HOST"] == "0.0.0.0"
    assert env["SOVTERM_LISTENER__PORT"] == str(CONTAINER_PORT)
    assert env["SOVTERM_CONTROL__SOCKET"] == CONTAINER_SOCKET
    assert env["PATH"].startswith("/opt/sovterm/bin:")


def test_dockerfile_entrypoint_is_the_daemon_and_healthcheck_uses_readyz():
    runtime = final_stage(dockerfile_instructions(DOCKERFILE))
    assert ("ENTRYPOINT", '["sovterm"]') in runtime
    assert ("CMD", '["daemon"]') in runtime
    healthchecks = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    check = healthchecks[0]
    assert "CMD" in check and '"python"' in check and "curl" not in check
    paths = set(re.findall(r"127\.0\.0\.1:%s(/\w+)", check))
    assert paths == {"/readyz"} and paths <= LISTENER_HEALTH_PATHS
    assert "'8080'" in check  # falls back to the listener's default port


def test_dockerfile_exec_forms_are_valid_json():
    """Invalid JSON in exec form silently turns into a shell-form command in Docker."""
    runtime = final_stage(dockerfile_instructions(DOCKERFILE))
    for word, rest in runtime:
        if word in {"ENTRYPOINT", "CMD", "VOLUME"}:
            assert isinstance(json.loads(rest), list), rest
        if word == "HEALTHCHECK":
            assert isinstance(json.loads(rest.split(" CMD ", 1)[1]), list), rest


def _dockerfile_healthcheck_argv() -> list[str]:
    runtime = final_stage(dockerfile_instructions(DOCKERFILE))
    (check,) = [rest for word, rest in runtime if word == "HEALTHCHECK"]
    return json.loads(check.split(" CMD ", 1)[1])


def test_dockerfile_healthcheck_passes_only_when_readyz_answers_200(health_server):
    port, state = health_server
    argv = _dockerfile_healthcheck_argv()
    assert argv[0] == "python"
    command = [sys.executable, *argv[1:]]
    ok = subprocess.run(command, env=child_env(port), capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    state["readyz"] = 503
    failing = subprocess.run(command, env=child_env(port), capture_output=True, timeout=30)
    assert failing.returncode != 0


def test_dockerfile_has_no_architecture_specific_step():
    for word, rest in dockerfile_instructions(DOCKERFILE):
        if word in {"RUN", "FROM", "COPY"}:
            assert not re.search(r"amd64|arm64|aarch64|x86_64|--platform", rest), rest


def test_dockerignore_sends_only_what_the_build_copies():
    lines = [
        line for line in DOCKERIGNORE.read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert lines[0] == "**"
    included = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for word, rest in dockerfile_instructions(DOCKERFILE):
        if word == "COPY" and not rest.startswith("--from"):
            copied.update(Path(src).as_posix().rstrip("/") for src in rest.split()[:-1])
    assert copied == included == {"pyproject.toml", "README.md", "sovterm"}


# ---------------------------------------------------------------- Umbrel


def test_umbrel_manifest_has_every_key_the_linter_requires():
    manifest = umbrel_manifest()
    assert UMBREL_REQUIRED_KEYS <= manifest.keys()
    assert manifest["manifestVersion"] == 1
    assert manifest["id"] == "sovterm"
    assert manifest["category"] in UMBREL_CATEGORIES
    assert manifest["version"] == project_version()
    assert manifest["dependencies"] == ["btcpay-server"]
    assert manifest["path"] == ""
    assert manifest["gallery"] == [] and manifest["releaseNotes"] == ""
    assert isinstance(manifest["port"], int) and 1024 < manifest["port"] < 65536


def test_umbrel_compose_services_and_proxy():
    manifest, compose = umbrel_manifest(), umbrel_compose()
    assert "networks" not in compose
    services = compose["services"]
    assert set(services) == {"app_proxy", manifest["defaultShell"]}
    proxy = services["app_proxy"]
    assert set(proxy) == {"environment"}
    daemon_name = manifest["defaultShell"]
    env = proxy["environment"]
    assert env["APP_HOST"] == f"{manifest['id']}_{daemon_name}_1"
    assert env["APP_PORT"] == CONTAINER_PORT
    assert "PROXY_AUTH_ADD" not in env  # Umbrel login stays on for the status page
    whitelist = {path.strip() for path in env["PROXY_AUTH_WHITELIST"].split(",")}
    assert whitelist == {"/pay/*", "/oauth/qbo/callback"}
    # Webhooks come straight from BTCPay's container, never through the proxy.
    assert not any(path.startswith("/webhooks") for path in whitelist)


def test_umbrel_daemon_service_is_unprivileged_and_keeps_data_in_app_data_dir():
    manifest, compose = umbrel_manifest(), umbrel_compose()
    daemon = compose["services"][manifest["defaultShell"]]
    assert daemon["user"] == "1000:1000"
    assert "build" not in daemon and not daemon.get("privileged", False)
    assert daemon["init"] is True
    assert daemon["image"].split("@")[0].endswith(f"/sovterm:{project_version()}")
    volumes = daemon["volumes"]
    assert volumes == ["${APP_DATA_DIR}/data:" + CONTAINER_DATA_DIR]
    assert not any("docker.sock" in v for v in volumes)
    assert (UMBREL / "data" / ".gitkeep").is_file()
    env = daemon["environment"]
    assert env["SOVTERM_DATA_DIR"] == CONTAINER_DATA_DIR
    assert env["SOVTERM_LISTENER__HOST"] == "0.0.0.0"
    assert env["SOVTERM_LISTENER__PORT"] == CONTAINER_PORT
    assert env["SOVTERM_CONTROL__SOCKET"] == CONTAINER_SOCKET


def test_umbrel_btcpay_and_webhook_addresses():
    manifest, compose = umbrel_manifest(), umbrel_compose()
    env = compose["services"][manifest["defaultShell"]]["environment"]
    assert env["SOVTERM_BTCPAY__URL"] == "http://btcpay-server_web_1:3003"
    app_host = compose["services"]["app_proxy"]["environment"]["APP_HOST"]
    # the base address on the internal network; the daemon appends /webhooks/btcpay/<store>
    assert env["SOVTERM_BTCPAY__WEBHOOK_URL"] == f"http://{app_host}:{CONTAINER_PORT}"


def test_umbrel_readme_opens_the_tui_in_the_daemon_container():
    readme = (UMBREL / "README.md").read_text()
    app_host = umbrel_compose()["services"]["app_proxy"]["environment"]["APP_HOST"]
    assert f"docker exec -it {app_host} sovterm tui" in readme
    assert "`sovterm tui`" in readme


# ---------------------------------------------------------------- StartOS


def test_start9_manifest_keys_version_and_assets():
    manifest = start9_manifest()
    assert START9_REQUIRED_KEYS <= manifest.keys()
    assert manifest["id"] == "sovterm"
    version = str(manifest["version"])
    assert version == project_version() or version.startswith(project_version() + ".")
    assert set(manifest["hardware-requirements"]["arch"]) == {"x86_64", "aarch64"}
    for asset in manifest["assets"].values():
        assert (START9 / asset).is_file(), asset
    assert (START9 / manifest["assets"]["icon"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_start9_main_mounts_the_data_volume_and_runs_the_entrypoint():
    manifest = start9_manifest()
    main = manifest["main"]
    assert main["type"] == "docker" and main["image"] == "main"
    assert main["mounts"] == {"main": CONTAINER_DATA_DIR}
    assert manifest["volumes"]["main"] == {"type": "data"}
    assert (START9 / main["entrypoint"]).is_file()
    dockerfile = (START9 / "Dockerfile").read_text()
    assert main["entrypoint"] in dockerfile
    assert "tini" in dockerfile


def test_start9_interface_points_at_the_listener_port():
    interface = start9_manifest()["interfaces"]["main"]
    assert interface["tor-config"]["port-mapping"] == {80: str(CONTAINER_PORT)}
    assert interface["lan-config"] == {443: {"ssl": True, "internal": CONTAINER_PORT}}
    assert interface["ui"] is True
    assert set(interface["protocols"]) == {"tcp", "http"}


def test_start9_depends_on_btcpay_server():
    dependency = start9_manifest()["dependencies"]["btcpayserver"]
    assert dependency["requirement"]["type"] == "required"
    assert dependency["version"].startswith(">=")


def test_start9_health_check_requests_a_listener_health_path():
    checks = start9_manifest()["health-checks"]
    assert len(checks) == 1
    (check,) = checks.values()
    assert check["type"] == "docker" and check["inject"] is True
    script = (START9 / check["entrypoint"]).read_text()
    paths = set(re.findall(r"127\.0\.0\.1:%s(/\w+)", script))
    assert paths == {"/readyz"} and paths <= LISTENER_HEALTH_PATHS
    assert f'PORT="${{SOVTERM_LISTENER__PORT:-{CONTAINER_PORT}}}"' in script
    assert "exit 60" in script  # "starting" while the daemon boots
    assert check["entrypoint"] in (START9 / "Dockerfile").read_text()


def test_start9_backup_covers_the_whole_data_volume_including_the_key_file():
    backup = start9_manifest()["backup"]
    for action in ("create", "restore"):
        spec = backup[action]
        assert spec["mounts"]["main"] == CONTAINER_DATA_DIR
        assert spec["args"][:2] == ["duplicity", action]
        assert CONTAINER_DATA_DIR in spec["args"]
    # The key file lives in the data dir, so it is inside every backup; only the
    # socket directory is excluded.
    entrypoint = (START9 / "docker_entrypoint.sh").read_text()
    assert "printf 'run\\n' > \"$DATA/.backupignore\"" in entrypoint
    assert "sovterm.key" not in entrypoint


def test_start9_entrypoint_environment_matches_the_image_and_config_defaults():
    entrypoint = (START9 / "docker_entrypoint.sh").read_text()
    exports = dict(re.findall(r'(?m)^\s*export (SOVTERM_\w+)="?([^"\n]*)"?$', entrypoint))
    assert exports["SOVTERM_DATA_DIR"] == "$DATA"
    assert re.search(rf"(?m)^DATA={CONTAINER_DATA_DIR}$", entrypoint)
    assert exports["SOVTERM_LISTENER__PORT"] == str(CONTAINER_PORT)
    assert exports["SOVTERM_CONTROL__SOCKET"] == "$DATA/run/control.sock"
    assert exports["SOVTERM_BTCPAY__WEBHOOK_URL"] == f"http://sovterm.embassy:{CONTAINER_PORT}"
    default = "http://btcpayserver.embassy:23000"
    assert f"BTCPAY_URL:={default}" in entrypoint
    assert f'default: "{default}"' in (START9 / "scripts/procedures/getConfig.ts").read_text()
    assert entrypoint.rstrip().splitlines()[-1] == (
        "exec tini -s -- setpriv --reuid=1000 --regid=1000 --clear-groups sovterm daemon"
    )


@pytest.mark.parametrize("script", ["docker_entrypoint.sh", "check-readyz.sh"])
def test_start9_shell_scripts_are_executable_posix_sh(script):
    path = START9 / script
    assert path.stat().st_mode & 0o111
    assert path.read_text().startswith("#!/bin/sh\n")
    result = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True, timeout=10)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("duration_ms", "readyz", "expected_exit"),
    [(1_000, 200, 60), (20_000, 200, 0), (20_000, 503, 1)],
)
def test_start9_health_check_exit_codes(health_server, duration_ms, readyz, expected_exit):
    port, state = health_server
    state["readyz"] = readyz
    result = subprocess.run(
        ["sh", str(START9 / "check-readyz.sh")],
        input=str(duration_ms), env=child_env(port),
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == expected_exit, result.stderr
    if expected_exit == 1:
        assert "/readyz" in result.stderr


def test_start9_config_and_properties_are_script_procedures_that_exist():
    manifest = start9_manifest()
    assert manifest["config"] == {"get": {"type": "script"}, "set": {"type": "script"}}
    assert manifest["properties"] == {"type": "script"}
    exports = (START9 / "scripts" / "embassy.ts").read_text()
    for name in ("getConfig", "setConfig", "properties", "migration"):
        assert re.search(rf"export \{{ {name} \}} from \"\./procedures/\w+\.ts\"", exports)
    for module in re.findall(r'from "\./(procedures/\w+\.ts)"', exports):
        assert (START9 / "scripts" / module).is_file()


def test_start9_makefile_builds_both_arches_from_existing_inputs():
    makefile = (START9 / "Makefile").read_text()
    assert "--platform=linux/amd64" in makefile and "--platform=linux/arm64" in makefile
    for name in ("Dockerfile", "docker_entrypoint.sh", "check-readyz.sh", "manifest.yaml",
                 "instructions.md", "icon.png", "LICENSE", "scripts/bundle.ts"):
        assert name in makefile
        assert (START9 / name).is_file()
    recipe_lines = [line for line in makefile.splitlines() if line.startswith(("\t", "  "))]
    assert recipe_lines and all(line.startswith("\t") for line in recipe_lines)


def test_start9_instructions_explain_how_to_open_the_tui():
    instructions = (START9 / "instructions.md").read_text()
    assert "ssh start9@" in instructions
    assert "start-cli package attach sovterm" in instructions
    assert "sovterm tui" in instructions


# ---------------------------------------------------------------- cross-checks


def test_every_health_check_path_is_served_by_the_listener():
    texts = [DOCKERFILE.read_text(), (START9 / "check-readyz.sh").read_text()]
    paths = set()
    for text in texts:
        paths.update(re.findall(r"127\.0\.0\.1:[^/\s]+(/\w+)", text))
    assert paths and paths <= LISTENER_HEALTH_PATHS


def test_debian_guide_matches_the_unit_and_sysusers_file():
    guide = (REPO / "docs" / "install-debian.md").read_text()
    _, _, secret_path = unit_value("LoadCredential").partition(":")
    assert secret_path in guide
    assert unit_value("ExecStart").split()[0] in guide
    assert "systemctl enable --now sovterm" in guide
    assert f"usermod -aG {VIEWER_GROUP},{ADMIN_GROUP}" in guide
    assert "sovterm tui" in guide
    assert "/run/sovterm/control.sock" in guide


def test_packages_raise_the_open_file_limit_and_name_their_trusted_proxies() -> None:
    """#19 points 2 and 5: the listener's connection cap sits below the open-file limit each package
    sets, and each package names the proxy whose X-Forwarded-For the rate limits believe."""
    from sovterm.config import ListenerSettings

    unit = UNIT.read_text()
    assert re.search(r"^LimitNOFILE=(\d+)$", unit, re.M) and int(re.search(r"^LimitNOFILE=(\d+)$", unit, re.M)[1]) >= 8192
    compose = load_yaml(UMBREL / "docker-compose.yml")["services"]["daemon"]
    assert compose["ulimits"]["nofile"]["soft"] >= 8192
    umbrel_proxies = compose["environment"]["SOVTERM_LISTENER__TRUSTED_PROXIES"]
    entry = (START9 / "docker_entrypoint.sh").read_text()
    start9_proxies = re.search(r'TRUSTED_PROXIES:-([^}"]+)', entry)[1]
    assert 'ulimit -n "$(ulimit -Hn)"' in entry
    for value in (umbrel_proxies, start9_proxies):
        assert ListenerSettings(trusted_proxies=value).trusted_proxies  # parses as the daemon will
