"""How the backend process logs: every line a request causes carries its request id (the
`X-Request-ID` the response also carries), secrets never appear, and LOG_FORMAT=json gives one
JSON object per line (with the stream fields of backend/stream_log.py as keys)."""

from __future__ import annotations

import logging
import re
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

from backend.config import Settings

REDACTED = "[redacted]"
# Whatever follows `Bearer ` or an API-key header, whichever key it is.
_CREDENTIALS = re.compile(r"(?i)(bearer\s+|x-api-key['\"]?\s*[:=]\s*['\"]?)[^\s'\",]+")


class Redact(logging.Filter):
    """Replaces the given secrets, and anything sent as a bearer token or API key, in every
    record's message; with `one_line` (the text format) its line breaks are written escaped
    (a backslash and n or r), so that text from outside (a model server's error message)
    cannot forge a log line. A traceback, formatted apart, keeps its lines."""

    def __init__(self, secrets: list[str], one_line: bool = False) -> None:
        super().__init__()
        # Short values would redact ordinary words; secrets are long (config refuses short ones
        # outside development).
        self._secrets = sorted((s for s in secrets if len(s) >= 8), key=len, reverse=True)
        self._one_line = one_line

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _CREDENTIALS.sub(lambda m: m.group(1) + REDACTED, message)
        for secret in self._secrets:
            clean = clean.replace(secret, REDACTED)
        if self._one_line:
            clean = clean.replace("\r", "\\r").replace("\n", "\\n")
        if clean != message:
            record.msg, record.args = clean, None
        return True


# The probes' paths: a container's health check asks every few seconds (compose: the backend's
# own and nginx's, ~35,000 lines a day that pushed real requests out of the rotated logs).
_PROBES = frozenset({"/api/health", "/api/ready"})


class QuietProbes(logging.Filter):
    """Drops uvicorn's access line of a health or readiness probe that succeeded; a failed one
    (and every other request) is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn's access record: (client, method, path with query, HTTP version, status).
        if isinstance(args, tuple) and len(args) == 5:
            path, status = args[2], args[4]
            if isinstance(status, int) and status < 400 and isinstance(path, str):
                return path.partition("?")[0] not in _PROBES
        return True


def log_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` for the process, uvicorn's own loggers included."""
    secrets = [
        settings.openai_api_key.get_secret_value(),
        settings.centrifugo_api_key.get_secret_value(),
        settings.centrifugo_token_secret.get_secret_value(),
        settings.session_secret.get_secret_value(),
    ]
    formatters: dict[str, Any] = {
        "text": {"format": "%(asctime)s %(levelname)s [%(correlation_id)s] %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(correlation_id)s %(message)s",
            "rename_fields": {
                "asctime": "time",
                "levelname": "level",
                "name": "logger",
                "correlation_id": "request_id",
            },
            # uvicorn adds the message with terminal colours (`color_message`) to its records.
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
        },
    }
    quiet = {"level": "WARNING"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "asgi_correlation_id.CorrelationIdFilter", "default_value": "-"},
            "quiet_probes": {"()": "backend.logs.QuietProbes"},
            "redact": {
                "()": "backend.logs.Redact",
                "secrets": secrets,
                "one_line": settings.log_format == "text",
            },
        },
        "formatters": {"main": formatters[settings.log_format]},
        "handlers": {
            "main": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "main",
                "filters": ["request_id", "redact"],
            }
        },
        "root": {"handlers": ["main"], "level": "INFO"},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True, "filters": ["quiet_probes"]},
            # httpx logs every request at INFO: a line per publication batch.
            "httpx": quiet,
            "httpcore": quiet,
        },
    }
