"""Settings refuse placeholder secrets outside development."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from backend.config import Settings

STRONG = {
    "CENTRIFUGO_HTTP_API_KEY": "api-key-0123456789abcdefghijklmnopq",
    "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": "hmac-key-0123456789abcdefghijklmno",
    "SESSION_SECRET": "session-0123456789abcdefghijklmnopq",
}


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_strong_secrets_are_accepted_in_production() -> None:
    settings = make(ENVIRONMENT="production", **STRONG)
    assert settings.centrifugo_api_url == "http://127.0.0.1:8000/api"


@pytest.mark.parametrize(
    "placeholder",
    [
        "change-me",
        "secret",
        "short",
        # Guessable however long (an outside-in probe: each was taken).
        "a" * 32,
        "0" * 64,
        "change-me" * 4,
        "${SESSION_SECRET}" + "0123456789abcdefghijklmnop",
        "$(SESSION_SECRET)" + "0123456789abcdefghijklmnop",
        "0123456" * 5,
    ],
)
def test_placeholder_secrets_are_refused_in_production(placeholder: str) -> None:
    with pytest.raises(ValidationError, match="SESSION_SECRET"):
        make(ENVIRONMENT="production", **{**STRONG, "SESSION_SECRET": placeholder})


def test_placeholder_secrets_are_allowed_in_development() -> None:
    settings = make(ENVIRONMENT="development", **{**STRONG, "SESSION_SECRET": "change-me"})
    assert settings.session_secret.get_secret_value() == "change-me"


def test_missing_secrets_are_refused_everywhere() -> None:
    with pytest.raises(ValidationError, match="missing secrets: CENTRIFUGO_HTTP_API_KEY"):
        make(ENVIRONMENT="development")


def test_secrets_do_not_show_in_repr() -> None:
    assert "aaaa" not in repr(make(**STRONG))


def test_the_api_url_follows_the_port_or_an_override() -> None:
    assert make(**STRONG, CENTRIFUGO_HTTP_SERVER_PORT=8123).centrifugo_api_url == (
        "http://127.0.0.1:8123/api"
    )
    override = make(**STRONG, RELAY_CENTRIFUGO_API_URL="http://centrifugo:8000/api")
    assert override.centrifugo_api_url == "http://centrifugo:8000/api"


def test_the_api_url_may_name_every_node_of_a_cluster() -> None:
    nodes = make(**STRONG, RELAY_CENTRIFUGO_API_URL=" http://c1:8000/api  http://c2:8000/api ")
    assert nodes.centrifugo_api_urls == ("http://c1:8000/api", "http://c2:8000/api")
    assert nodes.centrifugo_api_url == "http://c1:8000/api"
    assert make(**STRONG, RELAY_CENTRIFUGO_API_URL=" ").centrifugo_api_urls == (
        "http://127.0.0.1:8000/api",
    )


@pytest.mark.parametrize("urls", ["centrifugo:8000", "http://c1/api ftp://c2/api", "http:///api"])
def test_an_api_url_that_is_not_one_is_refused(urls: str) -> None:
    with pytest.raises(ValidationError, match="RELAY_CENTRIFUGO_API_URL must be http"):
        make(**STRONG, RELAY_CENTRIFUGO_API_URL=urls)


@pytest.mark.parametrize("setting", ["BACKEND_PORT", "CENTRIFUGO_HTTP_SERVER_PORT"])
@pytest.mark.parametrize("port", [0, 65536, 99999])
def test_a_port_out_of_range_is_refused(setting: str, port: int) -> None:
    """A docs walkthrough: Centrifugo's port took 99999, and the backend started, unable to
    publish anything (make run refused it; the backend started alone or by compose did not)."""
    with pytest.raises(ValidationError, match=setting):
        make(**STRONG, **{setting: port})
    assert make(**STRONG, **{setting: 65535})


def test_a_history_limit_over_the_schema_s_ceiling_is_refused() -> None:
    assert make(**STRONG, MAX_HISTORY_TURNS=1000).max_history_turns == 1000
    with pytest.raises(ValidationError, match="MAX_HISTORY_TURNS"):
        make(**STRONG, MAX_HISTORY_TURNS=1001)


def test_a_session_shorter_than_two_connection_tokens_is_refused() -> None:
    """Each token renewal renews the session too, about once a token's lifetime (later in a
    background tab); a session that ends sooner makes the renewal a new user, and Centrifugo
    disconnects the open connection for good (code 3500)."""
    assert make(**STRONG, SESSION_MAX_AGE_SECONDS=120, TOKEN_TTL_SECONDS=60)
    with pytest.raises(ValidationError, match="must be at least twice TOKEN_TTL_SECONDS"):
        make(**STRONG, SESSION_MAX_AGE_SECONDS=7199, TOKEN_TTL_SECONDS=3600)


OPENAI = {**STRONG, "LLM_PROVIDER": "openai", "OPENAI_API_KEY": "sk-" + "k" * 40}


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("not a url", "OPENAI_BASE_URL must be an http:// or https:// URL"),
        ("", "OPENAI_BASE_URL must be"),
        ("ftp://models.example/v1", "OPENAI_BASE_URL must be"),
        ("127.0.0.1:11434/v1", "OPENAI_BASE_URL must be"),
        ("http://127.0.0.1:99999/v1", "OPENAI_BASE_URL has an invalid port"),
    ],
)
def test_a_model_server_url_that_cannot_work_is_refused_at_start(url: str, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        make(**{**OPENAI, "OPENAI_BASE_URL": url})


@pytest.mark.parametrize("key", ["sk-caf\u00e9" + "k" * 30, "sk-abc\r", " sk-abc", "sk-a\nb"])
def test_a_model_server_key_no_header_can_carry_is_refused_at_start(key: str) -> None:
    with pytest.raises(ValidationError, match="OPENAI_API_KEY holds characters"):
        make(**{**OPENAI, "OPENAI_API_KEY": key})


def test_a_placeholder_model_server_key_is_refused_outside_development() -> None:
    with pytest.raises(ValidationError, match="placeholder OPENAI_API_KEY"):
        make(**{**OPENAI, "OPENAI_API_KEY": "change-me", "ENVIRONMENT": "production"})
    assert make(**{**OPENAI, "OPENAI_API_KEY": "change-me", "ENVIRONMENT": "development"})


def test_no_key_is_refused_for_openai_s_own_server_only() -> None:
    with pytest.raises(ValidationError, match="OPENAI_API_KEY is empty"):
        make(**{**OPENAI, "OPENAI_API_KEY": ""})
    local = make(**{**OPENAI, "OPENAI_API_KEY": "", "OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"})
    assert local.openai_api_key.get_secret_value() == ""
    assert make(**STRONG, OPENAI_BASE_URL="not a url")  # the simulated model needs none of it


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("garbage", "REDIS_URL must be a redis://, rediss:// or unix:// URL"),
        ("http://127.0.0.1:6379/0", "REDIS_URL must be a redis://"),
        ("redis://127.0.0.1:99999/0", "REDIS_URL has an invalid port"),
        ("redis:///0", "REDIS_URL has no host"),
        ("redis://127.0.0.1:6379/zero", "REDIS_URL's database must be a number"),
    ],
)
def test_a_redis_url_the_client_cannot_use_is_refused_readably(url: str, said: str) -> None:
    """Probe: REDIS_URL=garbage stopped the backend with the Redis client's traceback, which did
    not name the setting."""
    with pytest.raises(ValidationError, match=said):
        make(**STRONG, REDIS_URL=url)


def test_a_refused_redis_url_does_not_show_its_password() -> None:
    with pytest.raises(ValidationError) as refused:
        make(**STRONG, REDIS_URL="redis://:hunter2hunter2@127.0.0.1:6379/zero")
    message = refused.value.errors()[0]["msg"]
    assert "redis://:***@127.0.0.1:6379/zero" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://:pw@redis.example:6380", "unix:///run/r.sock"]
)
def test_usable_redis_urls_are_taken(url: str) -> None:
    assert make(**STRONG, REDIS_URL=url).redis_url == url


@pytest.mark.parametrize("password", ["pa/ss+w0rd", "pa#ss", "pa?ss"])
def test_a_redis_password_a_url_cannot_carry_is_refused_without_showing_it(password: str) -> None:
    """Review: a password with a / (base64 has them) ended the URL's host part early for the
    parser, so the password was shown in full, as an 'invalid port'."""
    with pytest.raises(ValidationError) as refused:
        make(**STRONG, REDIS_URL=f"redis://:{password}@redis.example:6379/0")
    message = refused.value.errors()[0]["msg"]
    assert "percent-encode it" in message
    assert "redis://:***@redis.example:6379/0" in message
    assert password not in message


def test_a_secret_emptied_in_the_environment_is_said_to_be_hidden_there(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Operator probe: `CENTRIFUGO_HTTP_API_KEY= make run` hid .env's good key, and the message
    sent the reader to .env, where the key was."""
    monkeypatch.setenv("CENTRIFUGO_HTTP_API_KEY", "")
    values = {k: v for k, v in STRONG.items() if k != "CENTRIFUGO_HTTP_API_KEY"}
    with pytest.raises(ValidationError) as refused:
        make(**values)
    message = refused.value.errors()[0]["msg"]
    assert "missing secrets: CENTRIFUGO_HTTP_API_KEY" in message
    assert "set but empty in the environment, which overrides .env" in message
