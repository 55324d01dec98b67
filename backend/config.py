"""The service's settings: one object, read once from the environment and `.env`."""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)

# Values that ship in .env.example or in docs: fine on a laptop, refused anywhere else.
PLACEHOLDER_SECRETS = frozenset({"", "change-me", "changeme", "changethis", "secret", "insecure"})
MIN_SECRET_LENGTH = 32
# Guessable however long (an outside-in probe: `a` * 32, `0` * 64, `change-me` * 4 and a
# `${SESSION_SECRET}` left unexpanded were taken): a placeholder within it, a variable not
# expanded (by a shell or compose, `${...}`, or by Kubernetes, `$(...)`), or few distinct
# characters (32 random hex digits use fewer than 8 of the 16 about once in 28 million draws).
PLACEHOLDER_PARTS = ("change-me", "changeme", "changethis", "${", "$(")
MIN_DISTINCT_CHARACTERS = 8


# The most turns a history may hold whatever MAX_HISTORY_TURNS says: the request schema refuses
# a longer list before validating its items, so that a body of many small bad items (each one
# an error to build) costs nothing.
HISTORY_TURNS_CEILING = 1000


class Settings(BaseSettings):
    """Everything the backend reads from its environment.

    The two Centrifugo secrets use Centrifugo's own variable names, so that one `.env` configures
    both processes and they cannot disagree.
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    environment: Literal["development", "production"] = Field(
        "production", validation_alias="ENVIRONMENT"
    )
    backend_host: str = Field("127.0.0.1", validation_alias="BACKEND_HOST")
    backend_port: int = Field(5000, ge=1, le=65535, validation_alias="BACKEND_PORT")

    # The port is Centrifugo's own variable (one knob for both processes); the full URL is only
    # needed where Centrifugo runs on another host, as in docker compose. Several URLs,
    # separated by spaces (the nodes of one cluster): the first is used until it fails, then the
    # next (`make run-cluster` gives each backend its own node first).
    centrifugo_port: int = Field(
        8000, ge=1, le=65535, validation_alias="CENTRIFUGO_HTTP_SERVER_PORT"
    )
    centrifugo_api_url_override: str | None = Field(
        None, validation_alias="RELAY_CENTRIFUGO_API_URL"
    )
    centrifugo_api_key: SecretStr = Field(SecretStr(""), validation_alias="CENTRIFUGO_HTTP_API_KEY")
    centrifugo_token_secret: SecretStr = Field(
        SecretStr(""), validation_alias="CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY"
    )
    session_secret: SecretStr = Field(SecretStr(""), validation_alias="SESSION_SECRET")
    session_cookie_secure: bool = Field(False, validation_alias="SESSION_COOKIE_SECURE")
    # A session unused for this long is over; each `POST /api/token` renews it, and so does any
    # route that acts for a user once the session is past half its age. At least twice
    # TOKEN_TTL_SECONDS.
    session_max_age_seconds: int = Field(
        7 * 24 * 3600, ge=60, validation_alias="SESSION_MAX_AGE_SECONDS"
    )
    # The page's origins as Centrifugo is told to allow them (space-separated): a POST from one
    # of them written out (globs are Centrifugo's alone) passes the cross-site check where no
    # Sec-Fetch-Site tells and a proxy in front rewrote Host (backend/api/cross_site.py).
    allowed_origins: str = Field("", validation_alias="CENTRIFUGO_CLIENT_ALLOWED_ORIGINS")
    # Answers one user may have streaming at once (relay and direct ones counted apart).
    max_streams_per_user: int = Field(4, ge=1, validation_alias="MAX_STREAMS_PER_USER")
    # Answers started from one client address running at once (relay and direct ones counted
    # apart), whatever the users: sessions are free, so one address could otherwise start
    # answers without end. Relay answers are counted across every backend process sharing the
    # registry (REDIS_URL), direct ones per process. 64: an office of a few hundred people
    # behind one NAT, a few dozen of them waiting for an answer at the same moment (an answer
    # takes seconds), is far below it; 16 users at their full MAX_STREAMS_PER_USER reach it.
    max_streams_per_address: int = Field(64, ge=1, validation_alias="MAX_STREAMS_PER_ADDRESS")
    # Answers one backend process runs at once, relay and direct ones together; past it a new
    # one is refused with 503 and Retry-After. Above what the benchmarks run in one process
    # (2,000 streams); a process runs several thousand simulated ones.
    max_running_streams: int = Field(5000, ge=1, validation_alias="MAX_RUNNING_STREAMS")
    # Fresh channels (no answer known there) one user may subscribe to: a burst, then so many a
    # second; and one client address (many users behind one NAT). A page needs one a prompt.
    # Beyond them Centrifugo's subscribe proxy refuses (backend/centrifugo/subscriptions.py).
    subscribe_burst_per_user: int = Field(30, ge=1, validation_alias="SUBSCRIBE_BURST_PER_USER")
    subscribe_rate_per_user: float = Field(1.0, gt=0, validation_alias="SUBSCRIBE_RATE_PER_USER")
    subscribe_burst_per_address: int = Field(
        300, ge=1, validation_alias="SUBSCRIBE_BURST_PER_ADDRESS"
    )
    subscribe_rate_per_address: float = Field(
        20.0, gt=0, validation_alias="SUBSCRIBE_RATE_PER_ADDRESS"
    )
    # `text` (one readable line per record) or `json` (one JSON object per line).
    log_format: Literal["text", "json"] = Field("text", validation_alias="LOG_FORMAT")
    # Unset: one backend process, its streams in memory. Set (redis://host:6379/0): the streams
    # registry lives in Redis, shared by every backend process (docs/scaling.md).
    redis_url: str | None = Field(None, validation_alias="REDIS_URL")

    @field_validator("redis_url", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        """An empty REDIS_URL (as compose passes an unset one) means unset."""
        return None if value == "" else value

    connection_token_ttl_seconds: int = Field(3600, ge=60, validation_alias="TOKEN_TTL_SECONDS")
    max_text_chars: int = Field(8000, ge=1, validation_alias="MAX_TEXT_CHARS")
    # At most a day (nginx waits on a chat route a minute past it: a larger number, or `inf`,
    # made a config nginx refused, or crashed `make run`: a review).
    max_stream_seconds: float = Field(120.0, gt=0, le=86400, validation_alias="MAX_STREAM_SECONDS")
    # Characters of one answer (its thinking included); past it the answer is cut off with an
    # error. A real model meets MAX_STREAM_SECONDS long before; a runaway or hostile server
    # does not (a 100 MiB answer took Centrifugo from 104 to 435 MB: an outside-in probe).
    max_answer_chars: int = Field(1_000_000, ge=1, validation_alias="MAX_ANSWER_CHARS")
    coalesce_window_ms: float = Field(30.0, ge=0, validation_alias="COALESCE_WINDOW_MS")
    publish_timeout_seconds: float = Field(5.0, gt=0, validation_alias="PUBLISH_TIMEOUT_SECONDS")
    publish_outage_seconds: float = Field(30.0, ge=0, validation_alias="PUBLISH_OUTAGE_SECONDS")
    # At shutdown, how long the running answers may take to finish before they are ended;
    # meanwhile no new one starts (503).
    shutdown_drain_seconds: float = Field(30.0, ge=0, validation_alias="SHUTDOWN_DRAIN_SECONDS")
    shutdown_grace_seconds: float = Field(5.0, ge=0, validation_alias="SHUTDOWN_GRACE_SECONDS")
    reused_channel_check_seconds: float = Field(
        120.0, ge=0, validation_alias="REUSED_CHANNEL_CHECK_SECONDS"
    )
    sse_keepalive_seconds: float = Field(15.0, gt=0, validation_alias="SSE_KEEPALIVE_SECONDS")

    max_history_turns: int = Field(
        20, ge=0, le=HISTORY_TURNS_CEILING, validation_alias="MAX_HISTORY_TURNS"
    )
    max_history_chars: int = Field(32000, ge=0, validation_alias="MAX_HISTORY_CHARS")

    llm_provider: Literal["simulated", "openai"] = Field(
        "simulated", validation_alias="LLM_PROVIDER"
    )
    system_prompt: str = Field(
        "You are a helpful assistant. Answer in Markdown.", validation_alias="SYSTEM_PROMPT"
    )
    openai_base_url: str = Field("https://api.openai.com/v1", validation_alias="OPENAI_BASE_URL")
    openai_api_key: SecretStr = Field(SecretStr(""), validation_alias="OPENAI_API_KEY")
    openai_model: str = Field("gpt-4o-mini", min_length=1, validation_alias="OPENAI_MODEL")
    openai_timeout_seconds: float = Field(60.0, gt=0, validation_alias="OPENAI_TIMEOUT_SECONDS")

    sim_delay_min_ms: float = Field(30.0, ge=0, validation_alias="SIM_TOKEN_DELAY_MIN_MS")
    sim_delay_max_ms: float = Field(80.0, ge=0, validation_alias="SIM_TOKEN_DELAY_MAX_MS")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.sim_delay_max_ms < self.sim_delay_min_ms:
            raise ValueError("SIM_TOKEN_DELAY_MAX_MS must be >= SIM_TOKEN_DELAY_MIN_MS")
        self._check_centrifugo_urls()
        missing = [name for name, value in self._secrets().items() if not value]
        if missing:
            # An empty variable in the environment wins over .env's value: say so, or the
            # reader checks .env, finds the secret there, and is none the wiser (probe).
            emptied = [name for name in missing if os.environ.get(name) == ""]
            hint = (
                f"; {', '.join(emptied)} set but empty in the environment, which overrides .env: "
                "unset it there"
                if emptied
                else ""
            )
            raise ValueError(
                f"missing secrets: {', '.join(missing)} (`make run` writes random ones into "
                f"its settings file, .env by default{hint})"
            )
        weak = [name for name, value in self._secrets().items() if _is_weak(value)]
        if weak and self.environment != "development":
            raise ValueError(
                f"refusing to start with placeholder or short secrets: {', '.join(weak)} "
                f"(each needs {MIN_SECRET_LENGTH}+ random characters, at least "
                f"{MIN_DISTINCT_CHARACTERS} different ones, and no placeholder or unexpanded "
                "variable within: `make run` writes random "
                "ones in place of `change-me`; set any other yourself, e.g. `openssl rand -hex "
                "32`; or set ENVIRONMENT=development on a laptop)"
            )
        if weak:
            logger.warning("development mode with weak secrets: %s", ", ".join(weak))
        if self.session_max_age_seconds < 2 * self.connection_token_ttl_seconds:
            raise ValueError(
                f"SESSION_MAX_AGE_SECONDS ({self.session_max_age_seconds}) must be at least "
                f"twice TOKEN_TTL_SECONDS ({self.connection_token_ttl_seconds}): a connection "
                "renews its token, and with it the session, about once a token's lifetime (a "
                "tab in the background later); a session that ends sooner makes the renewal a "
                "new user, whose token Centrifugo refuses for the open connection "
                "(disconnected for good)"
            )
        if self.llm_provider == "openai":
            self._check_model_server()
        if self.redis_url is not None:
            self._check_redis_url(self.redis_url)
        return self

    @staticmethod
    def _check_redis_url(value: str) -> None:
        """A URL the Redis client can use: it refused anything else at start with a traceback
        that did not name the setting."""
        url = urlsplit(value)
        shown = redacted_url(value)
        userinfo = value.partition("://")[2].rpartition("@")[0]
        if any(character in userinfo for character in "/?#"):
            raise ValueError(
                "REDIS_URL's password holds a character a URL cannot carry there as it is "
                f"(/, ? or #): percent-encode it (/ as %2F, ? as %3F, # as %23) (got {shown!r})"
            )
        if url.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(
                "REDIS_URL must be a redis://, rediss:// or unix:// URL, such as "
                f"redis://127.0.0.1:6379/0 (got {shown!r})"
            )
        try:
            url.port  # noqa: B018 (raises for a port out of range)
        except ValueError as exc:
            raise ValueError(f"REDIS_URL has an invalid port ({shown!r})") from exc
        if url.scheme != "unix" and not url.hostname:
            raise ValueError(f"REDIS_URL has no host ({shown!r})")
        database = url.path.strip("/")
        if url.scheme != "unix" and database and not database.isdigit():
            raise ValueError(f"REDIS_URL's database must be a number, as in /0 (got {shown!r})")

    def _check_model_server(self) -> None:
        """The model server's settings, checked at start rather than failing every prompt."""
        url = urlsplit(self.openai_base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(
                f"OPENAI_BASE_URL must be an http:// or https:// URL with a host, such as "
                f"https://api.openai.com/v1 (got {self.openai_base_url!r})"
            )
        try:
            url.port  # noqa: B018 (raises for a port out of range)
        except ValueError as exc:
            message = f"OPENAI_BASE_URL has an invalid port ({self.openai_base_url!r})"
            raise ValueError(message) from exc
        key = self.openai_api_key.get_secret_value()
        if key and not (key.isascii() and key.isprintable() and key == key.strip()):
            raise ValueError(
                "OPENAI_API_KEY holds characters an HTTP header cannot carry (non-ASCII, "
                "control characters or surrounding spaces): copy the key again"
            )
        if key.strip().lower() in PLACEHOLDER_SECRETS - {""}:
            if self.environment != "development":
                raise ValueError("refusing to start with a placeholder OPENAI_API_KEY")
            logger.warning("development mode with a placeholder OPENAI_API_KEY")
        if not key and url.hostname == "api.openai.com":
            raise ValueError(
                "OPENAI_API_KEY is empty and OPENAI_BASE_URL is OpenAI's: set the key, or point "
                "OPENAI_BASE_URL at a server that needs none (Ollama, vLLM, llama.cpp)"
            )

    @property
    def centrifugo_api_urls(self) -> tuple[str, ...]:
        """The server API's URL, or those of the nodes of a cluster, in order of preference."""
        if self.centrifugo_api_url_override and self.centrifugo_api_url_override.split():
            return tuple(self.centrifugo_api_url_override.split())
        return (f"http://127.0.0.1:{self.centrifugo_port}/api",)

    @property
    def centrifugo_api_url(self) -> str:
        return self.centrifugo_api_urls[0]

    def _check_centrifugo_urls(self) -> None:
        for url in self.centrifugo_api_urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    "RELAY_CENTRIFUGO_API_URL must be http:// or https:// URLs with a host, "
                    f"separated by spaces, such as http://centrifugo:8000/api (got {url!r})"
                )

    def _secrets(self) -> dict[str, str]:
        return {
            "CENTRIFUGO_HTTP_API_KEY": self.centrifugo_api_key.get_secret_value(),
            "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": (
                self.centrifugo_token_secret.get_secret_value()
            ),
            "SESSION_SECRET": self.session_secret.get_secret_value(),
        }


def redacted_url(value: str) -> str:
    """`value` without the password it may carry, for messages and logs: everything between
    `scheme://` and the last `@` but the user name, whatever characters the password holds (a
    `/`, `#` or `?` in it, not percent-encoded, ends a URL's host part early for a parser)."""
    scheme, found, rest = value.partition("://")
    if not found or "@" not in rest:
        return value
    userinfo, _, host = rest.rpartition("@")
    if ":" not in userinfo:
        return value  # a user name only
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


def _is_weak(secret: str) -> bool:
    folded = secret.strip().lower()
    return (
        folded in PLACEHOLDER_SECRETS
        or len(secret) < MIN_SECRET_LENGTH
        or any(part in folded for part in PLACEHOLDER_PARTS)
        or len(set(secret)) < MIN_DISTINCT_CHARACTERS
    )


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_refusal(error: ValidationError) -> str:
    """Why settings are refused, one reason a line: what the backend prints (no traceback), and
    what `make run` says before it starts anything."""
    lines = ["the backend's settings are refused:"]
    for each in error.errors():
        name = " ".join(str(part) for part in each["loc"])
        why = str(each["msg"]).removeprefix("Value error, ")
        lines.append(f"  {name}: {why}" if name else f"  {why}")
    return "\n".join(lines)
