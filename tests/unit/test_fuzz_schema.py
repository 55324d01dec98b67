"""Requests generated from the app's own OpenAPI schema (schemathesis), valid and invalid ones,
on every operation, with and without a session: never a 5xx, and every response as the schema
documents it (a documented status code, a body that matches its schema, the documented
content type and headers).

The schema comes from `app.openapi()`, not from a route (`/api/openapi.json` is served in
development only). The app is the unit tier's (`create_app` with the stand-ins of
tests/unit/fakes.py); schemathesis serves it in-process (its ASGI transport runs the app's
lifespan once, in a thread of its own) and the module stops it at the end.

Reproducible: derandomized with a fixed seed, no example database. Bounded: `MAX_EXAMPLES`
generated requests per operation (valid and invalid together), plus the schema's examples and
schemathesis's deterministic coverage cases (boundary values, missing and wrongly typed fields,
other methods, ...); a few seconds in all. A failure prints the request as a curl command.

The statuses generated requests seldom reach (a running answer, the user's limit of streams,
Centrifugo unreachable, a failing or slow model) are reached on purpose by the last test and
checked the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.python.asgi import shutdown_lifespans

from backend.api.session import SESSION_COOKIE
from backend.app import create_app
from backend.centrifugo.channels import CHANNEL_PATTERN
from backend.core.streams import LocalStreams
from backend.core.types import Token
from tests.unit.apps import Api, running_app, settings
from tests.unit.fakes import RecordingPublisher, ScriptedModel

SEED = 20240611
MAX_EXAMPLES = 50
AS_DOCUMENTED = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
CHECKS = [not_a_server_error, *AS_DOCUMENTED]

APP = create_app(
    settings(),
    model=ScriptedModel([Token("thinking ", "thinking"), Token("Hello "), Token("world")]),
    publisher=RecordingPublisher(),
    streams=LocalStreams(),
)
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)
schema = schemathesis.openapi.from_dict(APP.openapi(), config=CONFIG)
schema.app = APP

_CHANNEL = re.compile(CHANNEL_PATTERN)


@pytest.fixture(scope="module", autouse=True)
def _stop_the_app() -> Iterator[None]:
    """The app's lifespan, started by schemathesis's first request, ends with this module (its
    streams end with `done`); a failing shutdown fails the module."""
    yield
    shutdown_lifespans()


@pytest.fixture(scope="module")
def session() -> tuple[dict[str, str], str]:
    """A session cookie from `POST /api/token`, and its user."""
    response = schema["/api/token"]["POST"].Case().call()
    assert response.status_code == 200, response.text
    cookie = SimpleCookie()
    for header in response.headers.get("set-cookie", []):
        cookie.load(header)
    user: str = response.json()["user"]
    return {SESSION_COOKIE: cookie[SESSION_COOKIE].value}, user


@schema.parametrize()
def test_without_a_session_every_response_is_as_documented(case: Case[Any]) -> None:
    case.call_and_validate(checks=CHECKS)


@schema.parametrize()
def test_with_a_session_every_response_is_as_documented(
    case: Case[Any], session: tuple[dict[str, str], str]
) -> None:
    cookies, user = session
    # A well-formed channel is made the caller's own, so that answers start (202, 409, 429)
    # and cancels find them or not (202, 404); another user's channel (403) is the other
    # test's, the last test's and the bad-input table's.
    body = case.body
    if isinstance(body, dict):
        channel = body.get("channel")
        if isinstance(channel, str) and _CHANNEL.match(channel):
            body["channel"] = f"{channel.rpartition('#')[0]}#{user}"
    case.call_and_validate(checks=CHECKS, cookies=cookies)


async def documented(
    api: Api,
    method: str,
    path: str,
    status: int,
    body: dict[str, Any] | None = None,
    stream_id: str | None = None,
) -> httpx.Response:
    """`method path` answered `status`, and the answer is as the schema documents it (a
    documented 5xx is a right answer here)."""
    url = path if stream_id is None else path.replace("{stream_id}", stream_id)
    response = await api.client.request(method, url, json=body)
    assert response.status_code == status, response.text
    operation = schema[path][method]
    parameters = None if stream_id is None else {"stream_id": stream_id}
    if body is None:
        case = operation.Case(path_parameters=parameters)
    else:
        case = operation.Case(path_parameters=parameters, body=body)
    case.validate_response(response, checks=AS_DOCUMENTED if status >= 500 else CHECKS)
    return response


async def test_the_answers_generated_requests_seldom_get_are_as_documented() -> None:
    """A running answer (its snapshot, its cancel, a second prompt on its channel), the user's
    limit of streams (429 with Retry-After), Centrifugo unreachable, a failing and a slow
    model, no session: reached on purpose and checked as the generated requests are."""
    async with running_app(ScriptedModel(endless=True, delay=0.01), MAX_STREAMS_PER_USER=1) as api:
        user = await api.user()
        running = {"text": "hi", "channel": f"stream:running-one#{user}"}
        await documented(api, "POST", "/api/execute", 202, running)
        await documented(api, "POST", "/api/execute", 409, running)
        second = {"text": "hi", "channel": f"stream:second-one#{user}"}
        limited = await documented(api, "POST", "/api/execute", 429, second)
        assert int(limited.headers["retry-after"]) > 0
        other = {"text": "hi", "channel": "stream:running-one#u_someoneelse"}
        await documented(api, "POST", "/api/execute", 403, other)
        snapshot = await documented(
            api, "GET", "/api/streams/{stream_id}", 200, None, "running-one"
        )
        assert snapshot.json()["done"] is None
        await documented(api, "POST", "/api/cancel", 202, {"channel": running["channel"]})
        await api.publisher.wait_for_done(running["channel"])
        snapshot = await documented(
            api, "GET", "/api/streams/{stream_id}", 200, None, "running-one"
        )
        assert snapshot.json()["done"] == {"reason": "cancelled", "error": None}
        await documented(api, "POST", "/api/cancel", 404, {"channel": running["channel"]})
        await documented(api, "GET", "/api/streams/{stream_id}", 404, None, "never-ran")
        api.publisher.is_ready = False
        await documented(api, "POST", "/api/execute", 503, second)
        await documented(api, "GET", "/api/ready", 503)
        api.client.cookies.clear()
        await documented(api, "POST", "/api/execute", 401, second)
        await documented(api, "POST", "/api/chat/sync", 401, {"prompt": "hi"})

    async with running_app(ScriptedModel(fail_after=1)) as api:
        await documented(api, "POST", "/api/chat/sync", 502, {"prompt": "hi"})
        await documented(api, "POST", "/api/chat", 200, {"prompt": "hi"})

    slow = ScriptedModel(endless=True, delay=0.01)
    async with running_app(slow, MAX_STREAM_SECONDS=0.1) as api:
        await documented(api, "POST", "/api/chat/sync", 504, {"prompt": "hi"})
