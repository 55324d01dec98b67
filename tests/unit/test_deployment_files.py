"""docker-compose.yml, checked without a Docker engine: it parses, pins Centrifugo, publishes
only 9000, and uses the same config files as the native run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from backend.api.limits import max_body_bytes
from tests.processes import ROOT, missing_component

COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return parsed


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        missing_component("docker-compose is missing: apt-get install docker-compose")
        return
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")  # what `make .env` starts from
    result = subprocess.run(
        [binary, "config", "-q"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_centrifugo_image_is_pinned(compose: dict[str, Any]) -> None:
    assert compose["services"]["centrifugo"]["image"] == "centrifugo/centrifugo:v6.9.1"


def test_only_nginx_publishes_and_only_9000(compose: dict[str, Any]) -> None:
    published = {name: s.get("ports", []) for name, s in compose["services"].items()}
    assert published == {"centrifugo": [], "backend": [], "nginx": ["${NGINX_PORT:-9000}:9000"]}
    for service in compose["services"].values():
        assert service.get("network_mode") != "host"


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
    for name in ("centrifugo", "backend"):
        assert compose["services"][name]["env_file"] == ".env"
    text = COMPOSE.read_text() + (ROOT / "centrifugo" / "config.json").read_text()
    for secret in ("HTTP_API_KEY", "HMAC_SECRET_KEY", "SESSION_SECRET", "hmac_secret_key"):
        assert f"{secret}:" not in text
        assert f'"{secret}"' not in text


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
        ({}, "9100", "http://localhost:9100 http://127.0.0.1:9100"),
        (
            {"CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": "https://chat.example.com"},
            "9100",
            "https://chat.example.com",
        ),
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
    script = centrifugo["command"][0].replace("$$", "$")  # compose's escape for a literal $
    stand_in = tmp_path / "centrifugo"
    stand_in.write_text('#!/bin/sh\nprintf "%s" "$CENTRIFUGO_CLIENT_ALLOWED_ORIGINS"\n')
    stand_in.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "RELAY_PUBLIC_PORT": public_port, **env_file}
    result = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout == origins


@pytest.mark.parametrize(
    ("env", "text", "history"),
    [({}, 8000, 32000), ({"MAX_TEXT_CHARS": "100", "MAX_HISTORY_CHARS": "0"}, 100, 0)],
)
def test_the_nginx_image_derives_the_body_limit_like_the_backend(
    compose: dict[str, Any], env: dict[str, str], text: int, history: int
) -> None:
    """The envsh the nginx image sources, run by a real shell, against the backend's formula."""
    dockerfile = (ROOT / "nginx" / "Dockerfile").read_text()
    assert "nginx/body-limit.envsh /docker-entrypoint.d/15-" in dockerfile
    nginx_env = compose["services"]["nginx"]["environment"]
    assert {"MAX_TEXT_CHARS", "MAX_HISTORY_CHARS"} <= set(nginx_env)
    script = f'. {ROOT / "nginx" / "body-limit.envsh"}; printf %s "$RELAY_MAX_BODY"'
    result = subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert int(result.stdout) == max_body_bytes(text, history)
