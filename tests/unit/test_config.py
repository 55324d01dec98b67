"""Settings refuse placeholder secrets outside development."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from backend.config import Settings

STRONG = {
    "CENTRIFUGO_HTTP_API_KEY": "a" * 40,
    "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": "b" * 40,
    "SESSION_SECRET": "c" * 40,
}


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)


def test_strong_secrets_are_accepted_in_production() -> None:
    settings = make(ENVIRONMENT="production", **STRONG)
    assert settings.centrifugo_api_url == "http://127.0.0.1:8000/api"


@pytest.mark.parametrize("placeholder", ["change-me", "secret", "short"])
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


def test_a_history_limit_over_the_schema_s_ceiling_is_refused() -> None:
    assert make(**STRONG, MAX_HISTORY_TURNS=1000).max_history_turns == 1000
    with pytest.raises(ValidationError, match="MAX_HISTORY_TURNS"):
        make(**STRONG, MAX_HISTORY_TURNS=1001)
