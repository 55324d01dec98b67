"""docker-compose.yml, checked without a Docker engine: it parses, pins Centrifugo, publishes
only 9000, uses the same config files as the native run, gives each container only the settings
it needs (every setting of the backend to the backend), and hardens every container."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, ValidationError
from pydantic.fields import FieldInfo

from backend.api.limits import chat_read_seconds, max_body_bytes
from backend.config import (
    MIN_DISTINCT_CHARACTERS,
    MIN_SECRET_LENGTH,
    PLACEHOLDER_PARTS,
    PLACEHOLDER_SECRETS,
    Settings,
    _is_weak,
)
from scripts import system_commands
from scripts.render_nginx import MAIN, trusted_proxies
from scripts.run import StartFailed
from scripts.run import trusted_proxy as run_trusted_proxy
from tests.processes import ROOT, missing_component

COMPOSE = ROOT / "docker-compose.yml"
SERVICES = ("centrifugo", "backend", "nginx")
SECRETS = ("CENTRIFUGO_HTTP_API_KEY", "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "SESSION_SECRET")
STRONG = {name: f"{name.lower()}-{'x' * 40}" for name in SECRETS}
# The backend's environment in compose, fixed by the file's own layout rather than by .env.
FIXED_BY_COMPOSE = {
    "BACKEND_HOST": "0.0.0.0",
    "BACKEND_PORT": "5000",
    "RELAY_CENTRIFUGO_API_URL": "http://centrifugo:8000/api",
    "CENTRIFUGO_HTTP_SERVER_PORT": "8000",
}
# Settings of backend/config.py that the backend container deliberately does not get, each with
# its reason. None today: every setting reaches it.
DELIBERATELY_OMITTED: dict[str, str] = {}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return parsed


@pytest.fixture(scope="module")
def docker_compose() -> str:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing_component("docker-compose is missing: apt-get install docker-compose")
        raise AssertionError("unreachable: missing_component skips or fails")
    return binary


def compose_config(
    binary: str, directory: Path, env_file: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` on a copy of the file with `env_file` as its .env, in an
    environment without any setting, so that only the file and the .env count."""
    shutil.copy(COMPOSE, directory / "docker-compose.yml")
    (directory / ".env").write_text(env_file)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory)}
    return subprocess.run(
        [binary, "config", *args],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def env_names(name: str, field: FieldInfo) -> set[str]:
    """The variables pydantic-settings reads a field of Settings from (upper case: config.py's
    names are not case-sensitive): its validation alias, else its alias or name with the prefix."""
    alias = field.validation_alias
    if isinstance(alias, str):
        return {alias.upper()}
    if isinstance(alias, AliasChoices):
        return {choice.upper() for choice in alias.choices if isinstance(choice, str)}
    prefix = str(Settings.model_config.get("env_prefix") or "")
    return {f"{prefix}{field.alias or name}".upper()}


def nginx_version(nginx: str) -> tuple[int, ...]:
    """`nginx -V`'s version, as numbers."""
    info = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=True).stderr
    found = re.search(r"nginx/(\d+(?:\.\d+)*)", info)
    assert found is not None, info
    return tuple(int(part) for part in found[1].split("."))


def environment(compose: dict[str, Any], service: str) -> dict[str, str]:
    env: dict[str, str] = compose["services"][service].get("environment", {})
    assert isinstance(env, dict), f"{service}: environment as a mapping, NAME: value"
    return env


def test_docker_compose_accepts_the_file(tmp_path: Path, docker_compose: str) -> None:
    env_file = (ROOT / ".env.example").read_text()  # what `make .env` starts from
    result = compose_config(docker_compose, tmp_path, env_file, "-q")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("how", ["empty", "unset"])
def test_docker_compose_refuses_to_start_without_a_secret(
    tmp_path: Path, docker_compose: str, secret: str, how: str
) -> None:
    lines = [f"{name}={value}" for name, value in STRONG.items()]
    env_file = "\n".join(
        line if not line.startswith(f"{secret}=") else ("" if how == "unset" else f"{secret}=")
        for line in lines
    )
    result = compose_config(docker_compose, tmp_path, env_file, "-q")
    assert result.returncode != 0
    assert "set it in .env (make .env)" in result.stderr + result.stdout


def test_the_backend_gets_the_codes_defaults_when_env_sets_only_the_secrets(
    tmp_path: Path, docker_compose: str
) -> None:
    """Compose's `${NAME:-default}` agree with backend/config.py, and what compose hands the
    backend is valid Settings."""
    env_file = "".join(f"{name}={value}\n" for name, value in STRONG.items())
    result = compose_config(docker_compose, tmp_path, env_file)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    backend_env: dict[str, Any] = {
        name: str(value) for name, value in resolved["services"]["backend"]["environment"].items()
    }
    settings = Settings(_env_file=None, **backend_env)
    for name, field in Settings.model_fields.items():
        names = env_names(name, field)
        if names & set(SECRETS):
            assert getattr(settings, name).get_secret_value() == STRONG[names.pop()]
        elif not names & set(FIXED_BY_COMPOSE) and not names & set(DELIBERATELY_OMITTED):
            default = field.get_default(call_default_factory=True)
            assert getattr(settings, name) == default, f"{names}: compose's default differs"
    assert settings.centrifugo_api_url == "http://centrifugo:8000/api"
    assert settings.backend_host == "0.0.0.0"
    assert settings.backend_port == 5000


def test_centrifugo_image_is_pinned(compose: dict[str, Any]) -> None:
    """v6.9.1, optionally with its digest as docs/deployment.md shows."""
    image = compose["services"]["centrifugo"]["image"]
    assert re.fullmatch(r"centrifugo/centrifugo:v6\.9\.1(@sha256:[0-9a-f]{64})?", image), image


def test_only_nginx_publishes_and_only_9000(compose: dict[str, Any]) -> None:
    published = {name: s.get("ports", []) for name, s in compose["services"].items()}
    nginx = ["${NGINX_HOST:-127.0.0.1}:${NGINX_PORT:-9000}:9000"]
    assert published == {"centrifugo": [], "backend": [], "nginx": nginx}
    for service in compose["services"].values():
        assert service.get("network_mode") != "host"


@pytest.mark.parametrize(
    ("env_file", "published"),
    [
        ("", "127.0.0.1"),  # as make run listens: this machine only (deployment review)
        ("NGINX_HOST=0.0.0.0\n", "0.0.0.0"),
    ],
)
def test_nginx_is_published_where_nginx_host_says(
    tmp_path: Path, docker_compose: str, env_file: str, published: str
) -> None:
    """It was published on every interface whatever NGINX_HOST said (and the documented
    override to loopback made nginx fail to start: compose appends to `ports`)."""
    secrets = "".join(f"{name}={value}\n" for name, value in STRONG.items())
    result = compose_config(docker_compose, tmp_path, secrets + env_file)
    assert result.returncode == 0, result.stderr
    (port,) = yaml.safe_load(result.stdout)["services"]["nginx"]["ports"]
    text = port if isinstance(port, str) else f"{port['host_ip']}:{port['published']}"
    assert text.startswith(f"{published}:9000"), port


def test_the_backend_takes_the_client_address_from_nginx_in_its_container(
    compose: dict[str, Any],
) -> None:
    """Probe: the backend logged nginx's container address for every client (uvicorn trusts
    X-Forwarded-For from loopback only, where nginx is under `make run`). Trusting any sender is
    safe only while the backend's port is not published."""
    assert environment(compose, "backend")["FORWARDED_ALLOW_IPS"] == "*"
    assert compose["services"]["backend"].get("ports", []) == []


def test_the_native_config_files_are_used(compose: dict[str, Any]) -> None:
    centrifugo = compose["services"]["centrifugo"]
    assert "./centrifugo/config.json:/centrifugo/config.json:ro" in centrifugo["volumes"]
    assert centrifugo["command"][-1].endswith("centrifugo --config /centrifugo/config.json")
    nginx = compose["services"]["nginx"]["build"]
    dockerfile = (ROOT / nginx["dockerfile"]).read_text()
    copy = "COPY nginx/relaychat.conf.template /etc/nginx/templates/relaychat.conf.template"
    assert copy in dockerfile
    assert "NGINX_ENVSUBST_FILTER=^RELAY_" in dockerfile


def test_secrets_come_from_env_not_from_the_files(compose: dict[str, Any]) -> None:
    """Every secret in compose is `${NAME:?...}` from .env (never a value, never empty); the
    Centrifugo config has none."""
    for service in SERVICES:
        for name, value in environment(compose, service).items():
            if name in SECRETS:
                assert value.startswith(f"${{{name}:?"), f"{service}: {name}: {value}"
            assert "change-me" not in value
    text = (ROOT / "centrifugo" / "config.json").read_text()
    for secret in ("HTTP_API_KEY", "HMAC_SECRET_KEY", "SESSION_SECRET", "hmac_secret_key"):
        assert f'"{secret}"' not in text


def test_no_container_gets_the_whole_env_file(compose: dict[str, Any]) -> None:
    for service in SERVICES:
        assert "env_file" not in compose["services"][service], service


def test_every_setting_of_the_backend_reaches_its_container(compose: dict[str, Any]) -> None:
    """Every setting of backend/config.py is in the backend's environment in compose (more is
    fine: the backend ignores variables it does not know)."""
    given = {name.upper() for name in environment(compose, "backend")}
    missing = sorted(
        "/".join(sorted(names))
        for name, field in Settings.model_fields.items()
        if not (names := env_names(name, field)) & given and not names & set(DELIBERATELY_OMITTED)
    )
    assert missing == []
    for name, value in FIXED_BY_COMPOSE.items():
        assert environment(compose, "backend")[name] == value


def test_the_backend_gets_the_settings_being_added(compose: dict[str, Any]) -> None:
    """Settings the backend gains alongside this file, with the defaults it gives them."""
    backend = environment(compose, "backend")
    assert backend["MAX_STREAMS_PER_USER"] == "${MAX_STREAMS_PER_USER:-4}"
    assert backend["LOG_FORMAT"] == "${LOG_FORMAT:-text}"
    assert backend["SESSION_MAX_AGE_SECONDS"] == "${SESSION_MAX_AGE_SECONDS:-604800}"


@pytest.mark.parametrize("service", ["centrifugo", "nginx"])
def test_centrifugo_and_nginx_get_no_secret_of_the_backend(
    compose: dict[str, Any], service: str
) -> None:
    names = set(environment(compose, service))
    assert "SESSION_SECRET" not in names
    assert not {name for name in names if name.startswith("OPENAI_")}


def test_centrifugo_gets_its_secrets_and_nginx_none(compose: dict[str, Any]) -> None:
    centrifugo = environment(compose, "centrifugo")
    assert {"CENTRIFUGO_HTTP_API_KEY", "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY"} <= set(centrifugo)
    assert (
        centrifugo["CENTRIFUGO_CLIENT_ALLOWED_ORIGINS"] == "${CENTRIFUGO_CLIENT_ALLOWED_ORIGINS:-}"
    )
    assert not set(environment(compose, "nginx")) & set(SECRETS)


@pytest.mark.parametrize("service", SERVICES)
def test_every_container_is_hardened(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    assert spec["read_only"] is True
    assert spec["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in spec["security_opt"]
    assert re.fullmatch(r"[1-9][0-9]*[mg]", spec["mem_limit"]), spec["mem_limit"]
    assert float(spec["cpus"]) > 0
    assert spec["logging"] == {
        "driver": "json-file",
        "options": {"max-size": "10m", "max-file": "3"},
    }
    assert "privileged" not in spec
    # Only nginx's master process gets capabilities back: to hand its temporary directories
    # to the workers' user and to switch to that user.
    allowed = {"CHOWN", "SETGID", "SETUID"} if service == "nginx" else set()
    assert set(spec.get("cap_add", [])) <= allowed


@pytest.mark.parametrize(
    ("service", "writable"),
    [
        ("centrifugo", {"/tmp"}),
        ("backend", {"/tmp"}),
        # The image renders its templates into conf.d at every start; request bodies and proxy
        # buffers go to /var/cache/nginx; the pid file to /var/run, a link to /run on Alpine.
        ("nginx", {"/etc/nginx/conf.d", "/var/cache/nginx", "/run", "/tmp"}),
    ],
)
def test_read_only_containers_can_write_where_they_must(
    compose: dict[str, Any], service: str, writable: set[str]
) -> None:
    mounts = {entry.split(":")[0] for entry in compose["services"][service].get("tmpfs", [])}
    assert mounts == writable


def test_the_backend_stops_at_once_and_holds_many_connections(compose: dict[str, Any]) -> None:
    """A compose review: as PID 1 without an init, Python ignored SIGTERM until uvicorn had
    started (a stop waited 70 s); Docker's usual soft limit of 1,024 descriptors stopped it near
    a thousand SSE clients."""
    backend = compose["services"]["backend"]
    assert backend["init"] is True
    assert backend["ulimits"]["nofile"] >= 32768


def test_nginx_renders_its_template_into_the_writable_conf_d(compose: dict[str, Any]) -> None:
    """The image's default output directory, /etc/nginx/conf.d, is the tmpfs."""
    nginx = compose["services"]["nginx"]
    assert "NGINX_ENVSUBST_OUTPUT_DIR" not in nginx["environment"]
    assert "NGINX_ENVSUBST_OUTPUT_DIR" not in (ROOT / "nginx" / "Dockerfile").read_text()


def test_the_backend_has_time_to_publish_done_when_stopped(compose: dict[str, Any]) -> None:
    """Room for SHUTDOWN_DRAIN_SECONDS and SHUTDOWN_GRACE_SECONDS raised to 60 together
    (.env.example says so): a fixed 15 s killed the backend half-way through a longer grace
    (deployment review); the defaults fit."""
    backend = compose["services"]["backend"]
    grace = backend["stop_grace_period"]
    assert grace.endswith("s")
    assert int(grace[:-1]) >= 60 + 10
    example = (ROOT / ".env.example").read_text()
    assert "SHUTDOWN_DRAIN_SECONDS up to 60" in " ".join(example.split())
    defaults = [
        float(backend["environment"][name].rpartition(":-")[2].rstrip("}"))
        for name in ("SHUTDOWN_DRAIN_SECONDS", "SHUTDOWN_GRACE_SECONDS")
    ]
    assert sum(defaults) <= 60


def test_the_nginx_image_follows_the_stable_branch_and_builds_without_buildkit() -> None:
    """1.27 was a mainline branch: its tag is no longer rebuilt with fixes. `COPY --chmod`
    needs BuildKit, which Debian's docker-compose 1.29 does not use (deployment review)."""
    dockerfile = (ROOT / "nginx" / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (nginx:\S+)", dockerfile, flags=re.M)
    match = re.fullmatch(r"nginx:1\.(\d+)-alpine(@sha256:[0-9a-f]{64})?", base)
    assert match is not None, base
    assert int(match[1]) % 2 == 0, base
    # `server ... resolve` in an upstream (the template under compose) is in nginx since 1.27.3.
    assert int(match[1]) >= 28, base
    assert not re.search(r"^COPY --chmod", dockerfile, flags=re.M)
    assert "chmod 0755 /docker-entrypoint.d/15-relaychat-body-limit.envsh" in dockerfile


def test_nginx_s_workers_fit_its_container_and_let_go_on_stop() -> None:
    """`auto` counts the host's CPUs, not the container's (each worker holds its connection
    table); on stop, WebSockets held nginx until it was killed."""
    conf = (ROOT / "nginx" / "nginx.conf").read_text()
    assert re.search(r"^worker_processes [1-4];", conf, flags=re.M)
    assert re.search(r"^worker_shutdown_timeout \d+s;", conf, flags=re.M)


def test_nginx_knows_the_proxy_in_front_of_it(compose: dict[str, Any]) -> None:
    env = environment(compose, "nginx")
    assert env["RELAY_TRUSTED_PROXY"] == "${NGINX_TRUSTED_PROXY:-127.0.0.1}"
    template = (ROOT / "nginx" / "relaychat.conf.template").read_text()
    assert "set_real_ip_from ${RELAY_TRUSTED_PROXY};" in template
    assert "$proxy_add_x_forwarded_for" not in template  # a chain the client may have written


def test_other_settings_files_stay_out_of_the_build_context() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert {".env", "*.env", ".env.*"} <= set(ignored)


def test_every_service_is_healthchecked_waited_for_and_restarted(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for service in services.values():
        assert service["healthcheck"]["test"]
        assert service["restart"] == "unless-stopped"
        for condition in service.get("depends_on", {}).values():
            assert condition == {"condition": "service_healthy"}
    assert set(services["nginx"]["depends_on"]) == {"backend", "centrifugo"}
    assert set(services["backend"]["depends_on"]) == {"centrifugo"}


def test_backend_image_runs_as_a_user_without_reload() -> None:
    dockerfile = (ROOT / "backend" / "Dockerfile").read_text()
    users = [line.split()[1] for line in dockerfile.splitlines() if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}
    assert "--reload" not in dockerfile


def test_no_insecure_switch_in_the_centrifugo_config() -> None:
    text = (ROOT / "centrifugo" / "config.json").read_text()
    assert "insecure" not in text
    assert "allow_subscribe_for_client" not in text
    assert "allow_publish" not in text


@pytest.mark.parametrize(
    ("env_file", "public_port", "origins"),
    [
        ({}, "9000", "http://localhost:9000 http://127.0.0.1:9000"),
        # Compose passes the variable empty when .env does not set it.
        (
            {"CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": ""},
            "9000",
            "http://localhost:9000 http://127.0.0.1:9000",
        ),
        # Blank is unset, as `make run` strips it (Centrifugo refused every browser on "  ").
        (
            {"CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": " \t "},
            "9000",
            "http://localhost:9000 http://127.0.0.1:9000",
        ),
        (
            {"CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": " https://a.example  https://b.example "},
            "9000",
            " https://a.example  https://b.example ",
        ),
        ({"CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": "*"}, "9000", "*"),
        ({}, "9100", "http://localhost:9100 http://127.0.0.1:9100"),
        (
            {"CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": "https://chat.example.com"},
            "9100",
            "https://chat.example.com",
        ),
        # NGINX_HOST (compose publishes there): one other address is the page's too.
        (
            {"RELAY_PUBLIC_HOST": "192.0.2.5"},
            "9000",
            "http://localhost:9000 http://127.0.0.1:9000 http://192.0.2.5:9000",
        ),
        ({"RELAY_PUBLIC_HOST": "0.0.0.0"}, "9000", "http://localhost:9000 http://127.0.0.1:9000"),
        ({"RELAY_PUBLIC_HOST": "127.0.0.1"}, "9000", "http://localhost:9000 http://127.0.0.1:9000"),
        # IPv6, with or without brackets, in either case (review: `[[2001:db8::1]]`).
        (
            {"RELAY_PUBLIC_HOST": "[2001:DB8::1]"},
            "9000",
            "http://localhost:9000 http://127.0.0.1:9000 http://[2001:db8::1]:9000",
        ),
        (
            {"RELAY_PUBLIC_HOST": "2001:db8::1"},
            "9000",
            "http://localhost:9000 http://127.0.0.1:9000 http://[2001:db8::1]:9000",
        ),
        ({"RELAY_PUBLIC_HOST": "[::]"}, "9000", "http://localhost:9000 http://127.0.0.1:9000"),
        ({"RELAY_PUBLIC_HOST": "[::1]"}, "9000", "http://localhost:9000 http://127.0.0.1:9000"),
    ],
)
def test_compose_derives_allowed_origins_like_make_run(
    compose: dict[str, Any],
    tmp_path: Path,
    env_file: dict[str, str],
    public_port: str,
    origins: str,
) -> None:
    """The Centrifugo container's start command, run by a real shell with a stand-in binary."""
    centrifugo = compose["services"]["centrifugo"]
    assert centrifugo["entrypoint"] == ["/bin/sh", "-c"]
    assert centrifugo["environment"]["RELAY_PUBLIC_PORT"] == "${NGINX_PORT:-9000}"
    assert centrifugo["environment"]["RELAY_PUBLIC_HOST"] == "${NGINX_HOST:-127.0.0.1}"
    script = centrifugo["command"][0].replace("$$", "$")  # compose's escape for a literal $
    stand_in = tmp_path / "centrifugo"
    stand_in.write_text('#!/bin/sh\nprintf "%s" "$CENTRIFUGO_CLIENT_ALLOWED_ORIGINS"\n')
    stand_in.chmod(0o755)
    env = {
        "PATH": f"{tmp_path}:/usr/bin:/bin",
        "RELAY_PUBLIC_PORT": public_port,
        **STRONG_CENTRIFUGO_SECRETS,
        **env_file,
    }
    result = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout == origins


STRONG_CENTRIFUGO_SECRETS = {
    "CENTRIFUGO_HTTP_API_KEY": "k-0123456789abcdefghijklmnopqrstu",
    "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": "h-0123456789abcdefghijklmnopqrstuvwxyz",
}


def centrifugo_start(
    compose: dict[str, Any], tools: Path, tmp_path: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The Centrifugo container's start command, run by `tools`' shell with `env` and a
    stand-in `centrifugo` that says it started."""
    script = compose["services"]["centrifugo"]["command"][0].replace("$$", "$")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "centrifugo"
    stand_in.write_text("#!/bin/sh\necho started\n")
    stand_in.chmod(0o755)
    path = f"{bin_dir}:{tools}"
    return subprocess.run(
        [str(tools / "sh"), "-c", script],
        env={"PATH": path, "RELAY_PUBLIC_PORT": "9000", **env},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    "secret",
    [
        "change-me",
        " Change-Me ",
        "secret",
        "INSECURE",
        "changethis",
        "changeme",
        "x" * 31,
        "x" * 32,
        "0" * 64,
        "0123456" * 5,
        "change-me" * 4,
        "my-ChangeMe-secret-0123456789-abcdef",
        "${SESSION_SECRET}-0123456789abcdefghij",
        "$(SESSION_SECRET)-0123456789abcdefghij",
        "line-one-0123456789\nline-two-abcdefghij",  # read whole, not a line at a time
        "a-long-random-looking-secret-0123456789",
        "9f86d081884c7d659a2feaa0c55ad015",  # 32 hex digits
        "01234567" * 4,
    ],
)
@pytest.mark.parametrize("name", sorted(STRONG_CENTRIFUGO_SECRETS))
def test_the_centrifugo_container_refuses_weak_secrets_as_the_backend_does(
    compose: dict[str, Any], image_shell: Path, tmp_path: Path, name: str, secret: str
) -> None:
    """Probe: `cp .env.example .env` then `docker compose up` ran Centrifugo with the API key
    `change-me` (the backend refused it, Centrifugo did not). Its container now refuses what
    the backend refuses (backend/config.py), outside ENVIRONMENT=development."""
    env = {**STRONG_CENTRIFUGO_SECRETS, name: secret}
    weak = _is_weak(secret)
    for environment in ("production", None):
        result = centrifugo_start(
            compose,
            image_shell,
            tmp_path,
            env | ({"ENVIRONMENT": environment} if environment else {}),
        )
        if weak:
            assert result.returncode == 1, result
            assert result.stdout == ""
            assert f"placeholder or short secrets: {name} (" in result.stderr
        else:
            assert (result.returncode, result.stdout) == (0, "started\n"), result
    developing = centrifugo_start(
        compose, image_shell, tmp_path, env | {"ENVIRONMENT": "development"}
    )
    assert (developing.returncode, developing.stdout) == (0, "started\n"), developing
    assert compose["services"]["centrifugo"]["environment"]["ENVIRONMENT"] == (
        "${ENVIRONMENT:-production}"
    )


def test_the_centrifugo_container_names_every_weak_secret(
    compose: dict[str, Any], image_shell: Path, tmp_path: Path
) -> None:
    env = dict.fromkeys(STRONG_CENTRIFUGO_SECRETS, "change-me")
    result = centrifugo_start(compose, image_shell, tmp_path, env)
    assert result.returncode == 1
    assert ": CENTRIFUGO_HTTP_API_KEY CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY (" in result.stderr


def test_the_centrifugo_container_knows_the_backends_placeholders(compose: dict[str, Any]) -> None:
    """Its placeholders (alone or within), its least length and its least number of distinct
    characters are the backend's."""
    script = compose["services"]["centrifugo"]["command"][0]
    listed = re.search(r'\n?""\|(\S+)\) weak=', script)
    assert listed is not None
    patterns = listed.group(1).split("|")
    assert {"", *(p for p in patterns if "*" not in p)} == PLACEHOLDER_SECRETS
    within = {p.strip("*").strip("'").replace("$$", "$") for p in patterns if "*" in p}
    assert within == set(PLACEHOLDER_PARTS)
    assert f'[ "$${{#2}}" -ge {MIN_SECRET_LENGTH} ]' in script
    assert f"print n + 0}}')\" -ge {MIN_DISTINCT_CHARACTERS} ]" in script
    assert 'ENVIRON["S"]' in script  # the value whole, not line by line (a review)


@pytest.mark.parametrize(
    ("env", "text", "history", "turns"),
    [
        ({}, 8000, 32000, 20),
        ({"MAX_TEXT_CHARS": "100", "MAX_HISTORY_CHARS": "0", "MAX_HISTORY_TURNS": "0"}, 100, 0, 0),
        ({"MAX_HISTORY_TURNS": "1000"}, 8000, 32000, 1000),
    ],
)
def test_the_nginx_image_derives_the_body_limit_like_the_backend(
    compose: dict[str, Any], env: dict[str, str], text: int, history: int, turns: int
) -> None:
    """The envsh the nginx image sources, run by a real shell, against the backend's formula."""
    dockerfile = (ROOT / "nginx" / "Dockerfile").read_text()
    assert "nginx/body-limit.envsh /docker-entrypoint.d/15-" in dockerfile
    nginx_env = compose["services"]["nginx"]["environment"]
    assert {"MAX_TEXT_CHARS", "MAX_HISTORY_CHARS", "MAX_HISTORY_TURNS"} <= set(nginx_env)
    script = f'. {ROOT / "nginx" / "body-limit.envsh"}; printf %s "$RELAY_MAX_BODY"'
    result = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert int(result.stdout) == max_body_bytes(text, history, turns)


# MAX_STREAM_SECONDS values the backend refuses (a review: `1e3`, which it takes, was a shell
# error in the image, and nginx did not start).
REFUSED_STREAM_SECONDS = ("-5", "inf", "nan", "abc", "9" * 30, "86401")


@pytest.mark.parametrize(
    "stream",
    [None, "", "120", "239", "240", "600", "900.5", "1e3", "86400", *REFUSED_STREAM_SECONDS],
)
def test_the_nginx_image_derives_the_chat_wait_like_make_run(
    compose: dict[str, Any], image_shell: Path, stream: str | None
) -> None:
    """An outside-in probe: nginx cut /api/chat/sync after 300 s whatever MAX_STREAM_SECONDS
    said (above 300, a long answer ended in nginx's 504). It waits past it, in the image as in
    `make run` (backend/api/limits.py chat_read_seconds)."""
    assert "MAX_STREAM_SECONDS" in compose["services"]["nginx"]["environment"]
    script = f'. {ROOT / "nginx" / "body-limit.envsh"}; printf %s "$RELAY_CHAT_READ_SECONDS"'
    env = {"PATH": str(image_shell)} | ({} if stream is None else {"MAX_STREAM_SECONDS": stream})
    result = subprocess.run(
        [str(image_shell / "sh"), "-c", script], env=env, capture_output=True, text=True, check=True
    )
    if stream in REFUSED_STREAM_SECONDS:  # the backend refuses to start: nginx gets the floor
        with pytest.raises(ValidationError, match="MAX_STREAM_SECONDS"):
            Settings(_env_file=None, **STRONG, MAX_STREAM_SECONDS=stream)  # type: ignore[arg-type]
        assert int(result.stdout) == 300
        return
    expected = chat_read_seconds(
        float(stream or Settings.model_fields["max_stream_seconds"].default)
    )
    assert int(result.stdout) == expected
    assert expected >= 300
    assert expected > float(stream or 0)


@pytest.fixture(scope="module", params=["sh", "busybox"])
def image_shell(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory whose `sh`, `awk` and `tr` run the envsh files and the Centrifugo container's
    start command: this machine's, and busybox's, as in the images (Alpine)."""
    tools = tmp_path_factory.mktemp(f"tools-{request.param}")
    for name in ("sh", "awk", "tr"):
        if request.param == "busybox":
            binary = shutil.which("busybox")
            if binary is None:
                missing_component("busybox is missing: apt-get install busybox")
                raise AssertionError("unreachable")
        else:
            binary = shutil.which(name)
            assert binary is not None, name
        (tools / name).symlink_to(binary)
    return tools


def trusted_proxy_envsh(tools: Path, value: str) -> subprocess.CompletedProcess[str]:
    """nginx/trusted-proxy.envsh sourced with RELAY_TRUSTED_PROXY=`value`, by `tools`' shell."""
    script = f'. {ROOT / "nginx" / "trusted-proxy.envsh"}; printf %s "$RELAY_TRUSTED_PROXY"'
    env = {"PATH": str(tools), "RELAY_TRUSTED_PROXY": value}
    return subprocess.run(
        [str(tools / "sh"), "-c", script], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    "value", ["127.0.0.1", "10.0.0.1, 192.168.0.0/16,::1", "2001:db8::/32", "::ffff:10.0.0.1"]
)
def test_the_nginx_image_takes_the_trusted_proxies_as_make_run_does(
    image_shell: Path, value: str
) -> None:
    """Probe: under compose a list went into one `set_real_ip_from` line and nginx refused to
    start. The image now takes what `make run` takes, into the same lines."""
    dockerfile = (ROOT / "nginx" / "Dockerfile").read_text()
    assert "nginx/trusted-proxy.envsh /docker-entrypoint.d/16-" in dockerfile
    result = trusted_proxy_envsh(image_shell, value)
    assert result.returncode == 0, result.stderr
    native = trusted_proxies(run_trusted_proxy({"NGINX_TRUSTED_PROXY": value}))
    assert result.stdout == native


@pytest.mark.parametrize(
    "value",
    [
        "proxy.example.com",
        "cafe",  # hexadecimal letters: nginx would look it up as a host
        "dead.beef",
        "10.0.0.1 10.0.0.2",
        "10.0.0.1\n0.0.0.0/0",
        "127.1",
        "256.1.1.1",
        "010.0.0.1",
        "1.2.3.4/99",
        "1::2::3",
        "fe80::1%eth0",
        "10.0.0.1,*",
        "10.0.0.1,,10.0.0.2",
        "10.0.0.1,",
    ],
)
def test_the_nginx_image_refuses_a_trusted_proxy_that_is_no_address(
    image_shell: Path, value: str
) -> None:
    """Refused with the setting's name, as `make run` refuses it (review: a looser check in
    the image let host names and a space-separated pair through)."""
    result = trusted_proxy_envsh(image_shell, value)
    assert result.returncode != 0
    assert "NGINX_TRUSTED_PROXY" in result.stderr
    with pytest.raises(StartFailed):
        run_trusted_proxy({"NGINX_TRUSTED_PROXY": value})


CLUSTER = ROOT / "docker-compose.cluster.yml"


@pytest.fixture(scope="module")
def cluster(docker_compose: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """docker-compose.yml with docker-compose.cluster.yml over it, as docker-compose merges them."""
    directory = tmp_path_factory.mktemp("cluster")
    for path in (COMPOSE, CLUSTER):
        shutil.copy(path, directory / path.name)
    (directory / ".env").write_text((ROOT / ".env.example").read_text())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(directory)}
    files = ["-f", COMPOSE.name, "-f", CLUSTER.name]
    result = subprocess.run(
        [docker_compose, *files, "config"],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    merged: dict[str, Any] = yaml.safe_load(result.stdout)
    return merged


def test_the_cluster_puts_centrifugo_and_the_backend_on_redis(cluster: dict[str, Any]) -> None:
    services = cluster["services"]
    assert services["centrifugo"]["environment"]["CENTRIFUGO_ENGINE_TYPE"] == "redis"
    address = services["centrifugo"]["environment"]["CENTRIFUGO_ENGINE_REDIS_ADDRESS"]
    # With the password .env gives Redis (here .env.example's placeholder, which make .env
    # replaces and Redis refuses), in every URL of it.
    password = services["redis"]["environment"]["REDIS_PASSWORD"]
    assert password == "change-me" == services["redis"]["environment"]["REDISCLI_AUTH"]
    assert address == f"redis://:{password}@redis:6379"
    assert services["backend"]["environment"]["REDIS_URL"] == f"redis://:{password}@redis:6379/0"
    for name in ("centrifugo", "backend"):
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    # The single-process file keeps the memory engine and no registry.
    assert "redis" not in yaml.safe_load(COMPOSE.read_text())["services"]


def test_redis_is_pinned_hardened_internal_and_in_memory() -> None:
    redis = yaml.safe_load(CLUSTER.read_text())["services"]["redis"]
    assert re.fullmatch(r"redis:\d+\.\d+-alpine(@sha256:[0-9a-f]{64})?", redis["image"])
    assert redis["read_only"] is True
    assert redis["cap_drop"] == ["ALL"]
    assert "cap_add" not in redis
    assert "no-new-privileges:true" in redis["security_opt"]
    assert redis["mem_limit"] == "512m"
    assert float(redis["cpus"]) > 0
    assert redis["logging"]["options"] == {"max-size": "10m", "max-file": "3"}
    assert "ports" not in redis
    assert redis["entrypoint"] == ["/bin/sh", "-c"]
    [script] = redis["command"]
    started = shlex.split(script[script.index("exec redis-server") :])
    assert started[-4:] == ["--save", "", "--appendonly", "no"]
    # Full, it refuses writes instead of being OOM-killed and coming back empty.
    maxmemory = started[started.index("--maxmemory") + 1]
    assert int(maxmemory.removesuffix("mb")) < int(redis["mem_limit"].removesuffix("m"))
    assert started[started.index("--maxmemory-policy") + 1] == "noeviction"
    assert redis["user"].split(":")[0] != "0"


def redis_start(tools: Path, tmp_path: Path, password: str) -> subprocess.CompletedProcess[str]:
    """The cluster's Redis container's start command, run by `tools`' shell with a stand-in
    `redis-server` that prints its arguments and the file it is given."""
    script = yaml.safe_load(CLUSTER.read_text())["services"]["redis"]["command"][0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "redis-server"
    echo_file = 'while IFS= read -r line; do echo "$line"; done <"$1"'
    stand_in.write_text(f'#!/bin/sh\necho "$*"; {echo_file}\n')
    stand_in.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{tools}", "TMPDIR": str(tmp_path), "REDIS_PASSWORD": password}
    return subprocess.run(
        [str(tools / "sh"), "-c", script.replace("$$", "$")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_cluster_s_redis_asks_for_the_password_from_env_and_refuses_a_placeholder(
    image_shell: Path, tmp_path: Path
) -> None:
    """A probe: the compose cluster's Redis had no password, so any container on its network
    read and wrote every user's answers. It takes REDIS_PASSWORD from a file of its own (not
    its command line), and refuses the placeholder it would otherwise run with."""
    for placeholder in ("change-me", "", "short-0123456789", "x y" * 12, "a%2F" * 10, "q'" * 20):
        refused = redis_start(image_shell, tmp_path, placeholder)
        assert refused.returncode == 1, refused
        assert "refusing to start without a REDIS_PASSWORD" in refused.stderr
    password = "Zm9vYmFy-0123456789_abcdefghijklmnopqrstuv"
    started = redis_start(image_shell, tmp_path, password)
    assert started.returncode == 0, started
    arguments, conf = started.stdout.splitlines()
    assert arguments.startswith(f"{tmp_path}/redis.conf --maxmemory")
    assert password not in arguments
    assert conf == f"requirepass {password}"
    assert (tmp_path / "redis.conf").stat().st_mode & 0o777 == 0o600


def test_finished_snapshots_live_as_long_as_the_channels_history() -> None:
    """A snapshot outliving the history would refuse a channel id for nothing; a history
    outliving the snapshot would let a new answer share a channel with an old one."""
    from backend.cluster import redis_streams
    from backend.core import streams

    config = json.loads((ROOT / "centrifugo" / "config.json").read_text())
    (namespace,) = [n for n in config["channel"]["namespaces"] if n["name"] == "stream"]
    history_seconds = int(namespace["history_ttl"].removesuffix("s"))
    assert history_seconds == streams.FINISHED_TTL_SECONDS == redis_streams.FINISHED_TTL_SECONDS
    assert history_seconds <= 300  # minutes, not ten of them (issue 13): memory per answer


def test_a_channel_s_history_meta_goes_minutes_after_its_history() -> None:
    """Every answer is a channel of its own. Centrifugo keeps a channel's history meta (its
    epoch and offset) 30 days by default: a soak probe saw one meta key in Redis per answer ever
    given, ~0.4 KB each, against the compose Redis's 400 MB. Longer than the history, so that a
    reader recovering within the history's time finds the same epoch."""
    config = json.loads((ROOT / "centrifugo" / "config.json").read_text())
    (namespace,) = [n for n in config["channel"]["namespaces"] if n["name"] == "stream"]
    history = int(namespace["history_ttl"].removesuffix("s"))
    meta = int(namespace["history_meta_ttl"].removesuffix("s"))
    assert history < meta <= 600


def dockerfile_env(dockerfile: str) -> dict[str, str]:
    """The ENV NAME=value pairs of a Dockerfile (one ENV instruction, continued lines)."""
    joined = dockerfile.replace("\\\n", " ")
    pairs: dict[str, str] = {}
    for line in re.findall(r"^ENV (.+)$", joined, flags=re.M):
        pairs.update(re.findall(r"(\w+)=(\S+)", line))
    return pairs


def test_the_nginx_image_s_config_renders_whole_and_passes_nginx_t(
    tmp_path: Path, docker_compose: str
) -> None:
    """The image's config as its entrypoint makes it: the envsh sourced with compose's
    environment, then envsubst of the defined ^RELAY_ variables only (the image's
    20-envsubst-on-templates.sh), with nginx/nginx.conf as the main config; then `nginx -t`. A
    review showed that a ${RELAY_...} only the native renderer knows, or sizes changed in one of
    the two main configs only, passed every other test here and crash-looped the container."""
    nginx = system_commands.find("nginx")  # in /usr/sbin, off a user's PATH
    if nginx is None:
        missing_component("nginx is missing: apt-get install nginx")
        raise AssertionError("unreachable")
    env_file = "".join(f"{name}={value}\n" for name, value in STRONG.items())
    env_file += "NGINX_TRUSTED_PROXY=127.0.0.1, ::1\n"  # a list: a line each
    resolved = compose_config(docker_compose, tmp_path, env_file)
    assert resolved.returncode == 0, resolved.stderr
    service = yaml.safe_load(resolved.stdout)["services"]["nginx"]
    dockerfile = (ROOT / "nginx" / "Dockerfile").read_text()
    image_env = dockerfile_env(dockerfile)
    env = {**image_env, **{name: str(value) for name, value in service["environment"].items()}}
    # The envsh files in the order the entrypoint sources them (by their names there).
    copied = sorted(
        re.findall(
            r"^COPY nginx/(\S+\.envsh) /docker-entrypoint\.d/(\S+)$", dockerfile, flags=re.M
        ),
        key=lambda pair: pair[1],
    )
    assert [name for name, _ in copied] == ["body-limit.envsh", "trusted-proxy.envsh"]
    sources = "; ".join(f". {ROOT / 'nginx' / name}" for name, _ in copied)
    sourced = subprocess.run(
        ["/bin/sh", "-c", f"{sources}; env -0"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    env = dict(item.split("=", 1) for item in sourced.stdout.split("\0") if "=" in item)
    pattern = re.compile(image_env["NGINX_ENVSUBST_FILTER"])
    defined = {name: value for name, value in env.items() if pattern.search(name)}
    template = (ROOT / "nginx" / "relaychat.conf.template").read_text()
    rendered = re.sub(
        r"\$\{(\w+)\}", lambda m: defined.get(m[1], m[0]), template
    )  # envsubst with a list of names leaves every other ${...} alone
    left = re.findall(r"\$\{RELAY_\w+\}", rendered)
    assert left == [], left
    # Probe: looked up once at start, a recreated backend's or Centrifugo's new address (or a new
    # scale) was never seen, and /api/ answered 502 until nginx was restarted. Every upstream's
    # servers are looked up again (`resolve`, in shared memory), through Docker's DNS.
    upstreams = re.findall(r"^upstream (\w+) \{(.*?)^\}", rendered, flags=re.M | re.S)
    assert {name for name, _ in upstreams} == {"relay_backend", "relay_centrifugo"}
    for name, body in upstreams:
        assert re.search(rf"^\s*zone {name} \d+k;", body, flags=re.M), name
        servers = re.findall(r"^\s*server (.+);", body, flags=re.M)
        assert servers, name
        assert all(server.endswith(" resolve") for server in servers), servers
    assert re.search(r"^resolver 127\.0\.0\.11 valid=\d+s", rendered, flags=re.M)

    # Where the container's nginx writes, each under a tmpfs of compose's.
    main = (ROOT / "nginx" / "nginx.conf").read_text()
    (pid,) = re.findall(r"^pid (\S+);", main, flags=re.M)
    tmpfs = [entry.split(":")[0] for entry in service.get("tmpfs", [])]
    on_tmpfs = pid.replace("/var/run/", "/run/")  # Alpine: /var/run is a link to /run
    assert any(on_tmpfs.startswith(mount + "/") for mount in tmpfs), (pid, tmpfs)
    assert "/var/cache/nginx" in tmpfs  # the image's nginx keeps bodies and buffers there
    # The same sizes as the native run's main config.
    for directive in ("worker_connections", "worker_rlimit_nofile"):
        (image,) = re.findall(rf"^\s*{directive} (\d+);", main, flags=re.M)
        (native,) = re.findall(rf"^\s*{directive} (\d+);", MAIN, flags=re.M)
        assert image == native, directive

    # nginx -t on this machine: the container's names and paths swapped for local ones only,
    # and `resolve` taken out where this nginx predates it (1.27.3; Debian's is 1.22, the
    # image's 1.30: test_the_nginx_image_follows_the_stable_branch_and_builds_without_buildkit).
    (tmp_path / "logs").mkdir()
    local = rendered.replace("backend:5000", "127.0.0.1:5000").replace(
        "centrifugo:8000", "127.0.0.1:8000"
    )
    if nginx_version(nginx) < (1, 27, 3):
        local = local.replace(" resolve;", ";")
    (tmp_path / "relaychat.conf").write_text(local)
    local_main = (
        main.replace("user nginx;", "")
        .replace(pid, str(tmp_path / "nginx.pid"))
        .replace("/var/log/nginx/", f"{tmp_path}/logs/")
        .replace("/etc/nginx/conf.d/*.conf", str(tmp_path / "relaychat.conf"))
        .replace(
            "http {",
            "http {\n"
            + "".join(
                f"    {kind}_temp_path {tmp_path}/{kind};\n"
                for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
            ),
        )
    )
    (tmp_path / "nginx.conf").write_text(local_main)
    checked = subprocess.run(
        [nginx, "-t", "-p", str(tmp_path), "-e", str(tmp_path / "logs" / "error.log"),
         "-c", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
