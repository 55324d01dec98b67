"""The one v6 Centrifugo configuration, translated for v5.4 (scripts/centrifugo_launch.py)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from scripts.centrifugo_launch import (
    TranslationError,
    major_version,
    to_v5,
    v5_environment,
    write_v5_config,
)
from tests.processes import ROOT

PROJECT_CONFIG = ROOT / "centrifugo" / "config.json"


def test_the_project_config_translates_key_for_key() -> None:
    v6 = json.loads(PROJECT_CONFIG.read_text())

    v5 = to_v5(v6)

    assert v5["address"] == v6["http_server"]["address"]
    assert v5["port"] == v6["http_server"]["port"]
    assert v5["health"] is True
    assert v5["log_level"] == v6["log"]["level"]
    assert v5["allowed_origins"] == v6["client"]["allowed_origins"]
    assert v5["client_recovery_max_publication_limit"] == 1000
    assert v5["client_history_max_publication_limit"] == 1000
    stream = {**v6["channel"]["namespaces"][0]}
    stream["proxy_subscribe"] = stream.pop("subscribe_proxy_enabled")
    assert v5["namespaces"] == [stream]
    assert v5["namespaces"][0]["proxy_subscribe"] is True
    subscribe = v6["channel"]["proxy"]["subscribe"]
    assert v5["proxy_subscribe_endpoint"] == subscribe["endpoint"]
    assert v5["proxy_subscribe_timeout"] == subscribe["timeout"]
    assert v5["proxy_http_headers"] == ["X-Forwarded-For"]


def test_the_subscribe_proxy_is_on_for_streams_and_user_limited_channels_off() -> None:
    """Centrifugo lets a user-limited channel's own user in without asking the proxy: with
    both on, any client could still make any number of fresh channels (probe H1)."""
    v6 = json.loads(PROJECT_CONFIG.read_text())
    (stream,) = v6["channel"]["namespaces"]

    assert stream["subscribe_proxy_enabled"] is True
    assert not stream.get("allow_user_limited_channels")
    assert "allow_subscribe_for_client" not in stream
    subscribe = v6["channel"]["proxy"]["subscribe"]
    assert subscribe["endpoint"].endswith("/centrifugo/subscribe")
    assert subscribe["timeout"] == "1s"


def test_the_subscribe_proxy_settings_become_v5_keys_and_variables() -> None:
    v6 = {
        "channel": {
            "proxy": {
                "subscribe": {"endpoint": "http://b/s", "timeout": "1s", "http_headers": ["X-A"]}
            },
            "namespaces": [{"name": "stream", "subscribe_proxy_enabled": True}],
        }
    }

    assert to_v5(v6) == {
        "proxy_subscribe_endpoint": "http://b/s",
        "proxy_subscribe_timeout": "1s",
        "proxy_http_headers": ["X-A"],
        "namespaces": [{"name": "stream", "proxy_subscribe": True}],
    }
    namespaces = json.dumps([{"name": "stream", "subscribe_proxy_enabled": True}])
    assert v5_environment(
        {
            "CENTRIFUGO_CHANNEL_PROXY_SUBSCRIBE_ENDPOINT": "http://b/s",
            "CENTRIFUGO_CHANNEL_NAMESPACES": namespaces,
        }
    ) == {
        "CENTRIFUGO_PROXY_SUBSCRIBE_ENDPOINT": "http://b/s",
        "CENTRIFUGO_NAMESPACES": json.dumps([{"name": "stream", "proxy_subscribe": True}]),
    }


def test_nested_settings_become_flat_keys() -> None:
    v6 = {
        "client": {"token": {"hmac_secret_key": "s"}, "allowed_origins": ["http://a"]},
        "http_api": {"key": "k"},
        "engine": {"type": "redis", "redis": {"address": ["redis://127.0.0.1:6379"]}},
        "prometheus": {"enabled": True},
        "http_server": {"internal_port": 9001},
    }

    assert to_v5(v6) == {
        "token_hmac_secret_key": "s",
        "allowed_origins": ["http://a"],
        "api_key": "k",
        "engine": "redis",
        "redis_address": ["redis://127.0.0.1:6379"],
        "prometheus": True,
        "internal_port": 9001,
    }


def test_a_key_with_no_v5_equivalent_is_an_error_naming_it() -> None:
    v6 = {"client": {"allowed_origins": [], "ping_interval": "25s"}}

    with pytest.raises(TranslationError, match=r"client\.ping_interval"):
        to_v5(v6)


def test_an_unknown_namespace_key_is_an_error_naming_it() -> None:
    v6 = {"channel": {"namespaces": [{"name": "stream", "allow_subscribe_for_client": True}]}}

    with pytest.raises(TranslationError, match="allow_subscribe_for_client"):
        to_v5(v6)


def test_v6_variables_are_renamed_and_others_kept() -> None:
    env = {
        "PATH": "/usr/bin",
        "CENTRIFUGO_HTTP_API_KEY": "k",
        "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": "s",
        "CENTRIFUGO_HTTP_SERVER_PORT": "8001",
        "CENTRIFUGO_HTTP_SERVER_ADDRESS": "0.0.0.0",
        "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": "http://localhost:9000 http://127.0.0.1:9000",
        "CENTRIFUGO_BIN": "/somewhere/centrifugo",
        "CENTRIFUGO_VERSION": "5.4.9",  # scripts/centrifugo.sh's, exported by a user
    }

    assert v5_environment(env) == {
        "PATH": "/usr/bin",
        "CENTRIFUGO_API_KEY": "k",
        "CENTRIFUGO_TOKEN_HMAC_SECRET_KEY": "s",
        "CENTRIFUGO_PORT": "8001",
        "CENTRIFUGO_ADDRESS": "0.0.0.0",
        "CENTRIFUGO_ALLOWED_ORIGINS": "http://localhost:9000 http://127.0.0.1:9000",
    }


def test_an_unknown_centrifugo_variable_is_an_error_naming_it() -> None:
    with pytest.raises(TranslationError, match="CENTRIFUGO_CLIENT_PING_INTERVAL"):
        v5_environment({"CENTRIFUGO_CLIENT_PING_INTERVAL": "25s"})


def test_namespaces_from_the_environment_are_checked_too() -> None:
    good = json.dumps([{"name": "stream", "history_size": 10, "history_ttl": "60s"}])
    assert v5_environment({"CENTRIFUGO_CHANNEL_NAMESPACES": good}) == {
        "CENTRIFUGO_NAMESPACES": good
    }
    with pytest.raises(TranslationError, match="presence"):
        v5_environment({"CENTRIFUGO_CHANNEL_NAMESPACES": '[{"name": "x", "presence": true}]'})
    with pytest.raises(TranslationError, match="not JSON"):
        v5_environment({"CENTRIFUGO_CHANNEL_NAMESPACES": "stream"})


def test_the_translation_is_written_beside_nothing_else(tmp_path: Path) -> None:
    written = write_v5_config(PROJECT_CONFIG, tmp_path / "out")

    assert json.loads(written.read_text()) == to_v5(json.loads(PROJECT_CONFIG.read_text()))
    assert [path.name for path in written.parent.iterdir()] == ["config.v5.json"]


@pytest.mark.parametrize(
    ("printed", "major"),
    [
        ("Centrifugo v5.4.9 (Go version: go1.26.8)", 5),
        ("Centrifugo v6.9.1 (Go version: go1.26.8)", 6),
        ("Centrifugo v0.0.0 (Go version: go1.26.8)", 6),  # a build without the version ldflag
    ],
)
def test_the_major_version_is_read_from_the_binary(
    tmp_path: Path, printed: str, major: int
) -> None:
    binary = tmp_path / "centrifugo"
    binary.write_text(f"#!/bin/sh\necho '{printed}'\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)

    assert major_version(str(binary)) == major
