"""The routes with the model and publisher replaced: every status code the contract names."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import AsyncIterator

import jwt
import pytest
from starlette.types import Message

from backend.api.session import SESSION_COOKIE
from backend.core.ports import StreamsRecovering, StreamsUnavailable
from backend.core.streams import LocalStreams
from backend.core.types import Chunk, Done, Snapshot, Token
from tests.unit.apps import TOKEN_SECRET, Api, running_app
from tests.unit.fakes import ScriptedModel


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_app(ScriptedModel([Token("Hello "), Token("there")], delay=0.2)) as api:
        yield api


async def test_token_is_a_jwt_for_the_session_user(api: Api) -> None:
    response = await api.client.post("/api/token")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "user", "expires_in"}
    claims = jwt.decode(body["token"], TOKEN_SECRET, algorithms=["HS256"])
    assert claims["sub"] == body["user"]
    assert claims["exp"] - time.time() == pytest.approx(body["expires_in"], abs=5)
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


async def test_the_session_cookie_keeps_the_user(api: Api) -> None:
    assert await api.user() == await api.user()


async def test_a_forged_session_cookie_gets_a_new_user(api: Api) -> None:
    user = await api.user()
    api.client.cookies.set(SESSION_COOKIE, "InVfZm9yZ2VkIg.invalidsignature")
    assert await api.user() != user


async def test_execute_answers_202_before_the_answer_is_generated(api: Api) -> None:
    channel = f"stream:abcdefgh#{await api.user()}"

    response = await api.client.post("/api/execute", json={"text": "hello", "channel": channel})

    assert response.status_code == 202
    assert response.json() == {"channel": channel}
    assert channel in api.streams  # still running: the model takes 0.4 s
    assert await api.publisher.wait_for_done(channel) == [
        Chunk("Hello ", seq=1),
        Chunk("there", seq=2),
        Done("complete", seq=2),
    ]
    assert api.model.questions[0].prompt == "hello"


async def test_someone_elses_channel_is_403_and_nothing_is_published(api: Api) -> None:
    await api.user()
    response = await api.client.post(
        "/api/execute", json={"text": "hello", "channel": "stream:abcdefgh#u_someoneelse"}
    )
    assert response.status_code == 403
    assert "another user" in response.json()["detail"]
    assert api.model.questions == []  # never started
    assert api.publisher.published == []


async def test_a_running_channel_is_409(api: Api) -> None:
    channel = f"stream:abcdefgh#{await api.user()}"
    first = await api.client.post("/api/execute", json={"text": "hello", "channel": channel})
    second = await api.client.post("/api/execute", json={"text": "again", "channel": channel})
    assert (first.status_code, second.status_code) == (202, 409)
    assert "already streaming" in second.json()["detail"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": "hi", "channel": "stream:short#{user}"}, "channel: must look like"),
        ({"text": "hi", "channel": "other:abcdefgh#{user}"}, "channel: must look like"),
        ({"text": "hi", "channel": "stream:abcdefgh"}, "channel: must look like"),
        ({"text": "hi", "channel": "stream:abc/defgh#{user}"}, "channel: must look like"),
        ({"text": "", "channel": "stream:abcdefgh#{user}"}, "text:"),
        ({"text": " \n\t", "channel": "stream:abcdefgh#{user}"}, "text: is blank"),
        ({"text": "x" * 101, "channel": "stream:abcdefgh#{user}"}, "the limit is 100"),
        ({"channel": "stream:abcdefgh#{user}"}, "text: Field required"),
        ({"text": 5, "channel": "stream:abcdefgh#{user}"}, "text:"),
    ],
)
async def test_bad_execute_bodies_are_422_with_a_message(
    api: Api, body: dict[str, object], message: str
) -> None:
    user = await api.user()
    body = {k: v.format(user=user) if isinstance(v, str) else v for k, v in body.items()}
    response = await api.client.post("/api/execute", json=body)
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert api.publisher.published == []


async def test_invalid_json_is_422_with_a_message(api: Api) -> None:
    response = await api.client.post(
        "/api/execute", content=b'{"text": "hi",', headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": "the request body is not valid JSON at character 15: unexpected end of data"
    }


async def test_every_route_that_takes_a_body_reads_it_as_strict_json(api: Api) -> None:
    """Each router sets JSONBodyRoute (backend/api/json_body.py): one added without it would
    take NaN, or a UTF-16 body, again (a review). Every body the schema names is tried."""
    routes = [
        (method.upper(), path)
        for path, operations in api.app.openapi()["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert ("POST", "/api/execute") in routes  # the schema is read as expected
    assert len(routes) >= 4
    for method, path in routes:
        response = await api.client.request(
            method, path, content=b'{"x": NaN}', headers={"content-type": "application/json"}
        )
        assert response.status_code == 422, (path, response.text)
        assert response.json()["detail"].startswith("the request body is not valid JSON at"), path
    assert api.publisher.published == []


async def test_the_largest_allowed_prompt_and_history_fit_in_the_body_limit(api: Api) -> None:
    channel = f"stream:abcdefgh#{await api.user()}"
    turn = {"role": "user", "content": "\u00e9\n" * 800}  # 1,600 characters; 32,000 in all
    body = {"text": "\u00e9" * 100, "channel": channel, "history": [turn] * 20}
    response = await api.client.post("/api/execute", json=body)
    assert response.status_code == 202, response.text


async def test_every_limit_at_once_fits_in_the_body_limit_however_many_turns() -> None:
    """Review: the room for the JSON around the text was 16 KiB whatever MAX_HISTORY_TURNS
    said: with 1,000 turns, a body within every limit (each character an escaped emoji, as
    json.dumps writes it) was refused 413."""
    async with running_app(ScriptedModel(), MAX_HISTORY_TURNS=1000) as api:
        settings = api.app.state.settings
        emoji = "\U0001f600"
        per_turn = settings.max_history_chars // 1000
        turns = [
            {"role": "user" if n % 2 == 0 else "assistant", "content": emoji * per_turn}
            for n in range(1000)
        ]
        channel = f"stream:abcdefgh#{await api.user()}"
        body = {"text": emoji * settings.max_text_chars, "channel": channel, "history": turns}
        response = await api.client.post(
            "/api/execute",
            content=json.dumps(body, indent=1),
            headers={"content-type": "application/json"},
        )
        assert response.status_code == 202, response.text[:200]


async def test_oversized_body_is_413_with_a_message(api: Api) -> None:
    response = await api.client.post(
        "/api/execute",
        content=b'{"text": "' + b"x" * 2_000_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_every_route_that_takes_a_body_documents_its_413(api: Api) -> None:
    """A CI run's schema fuzzing sent /api/chat a body over the limit and got the 413 that the
    schema did not list: every operation with a request body lists it."""
    schema = api.app.openapi()
    with_body = [
        (path, method)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]
    assert ("/api/chat", "post") in with_body
    assert ("/api/execute", "post") in with_body
    for path, method in with_body:
        assert "413" in schema["paths"][path][method]["responses"], (path, method)


async def test_every_route_that_changes_something_documents_and_gives_its_cross_site_403(
    api: Api,
) -> None:
    """A newcomer's check of the docs: `POST /api/token` refused another site's page with a 403
    its schema did not list. Every operation that is not GET documents it, and gives it."""
    schema = api.app.openapi()
    changing = [
        (path, method)
        for path, operations in schema["paths"].items()
        for method in operations
        if method != "get"
    ]
    assert {("/api/token", "post"), ("/api/execute", "post"), ("/api/cancel", "post")} <= set(
        changing
    )
    for path, method in changing:
        assert "another site" in schema["paths"][path][method]["responses"]["403"]["description"]
        refused = await api.client.request(
            method, path, json={}, headers={"sec-fetch-site": "cross-site"}
        )
        assert refused.status_code == 403, (path, method)
        assert "another site" in refused.json()["detail"]


async def test_a_compressed_body_is_415_saying_so(api: Api) -> None:
    """An outside-in probe: a gzip body was read as JSON and refused as "not UTF-8"."""
    channel = f"stream:abcdefgh#{await api.user()}"
    body = gzip.compress(json.dumps({"text": "hi", "channel": channel}).encode())
    response = await api.client.post(
        "/api/execute",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 415
    assert response.json() == {
        "detail": "a body with Content-Encoding 'gzip' is not taken; send it uncompressed"
    }
    assert api.publisher.published == []
    # Review: only the last header was read; every header and every item of each count.
    for encodings in (["gzip", "identity"], ["identity, gzip"]):
        headers = [("content-type", "application/json")]
        headers += [("content-encoding", encoding) for encoding in encodings]
        refused = await api.client.post("/api/execute", content=body, headers=headers)
        assert refused.status_code == 415, encodings
    plain = await api.client.post(
        "/api/execute",
        json={"text": "hi", "channel": channel},
        headers={"content-encoding": "identity"},
    )
    assert plain.status_code == 202, plain.text


async def test_a_trailing_slash_is_a_404_not_a_redirect(api: Api) -> None:
    """An outside-in probe: `POST /api/execute/` was a 307 to `http://<host>/api/execute`, a
    URL nginx's Host header had taken the port from: the client sent prompt and cookie there."""
    channel = f"stream:abcdefgh#{await api.user()}"
    for method, path in [
        ("POST", "/api/execute/"),
        ("GET", "/api/health/"),
        ("POST", "/api/token/"),
    ]:
        response = await api.client.request(method, path, json={"text": "hi", "channel": channel})
        assert response.status_code == 404, (path, response.status_code)
        assert "location" not in response.headers
        assert response.json() == {"detail": "Not Found"}
    assert api.publisher.published == []


async def test_head_answers_wherever_get_does(api: Api) -> None:
    """An outside-in probe: `curl -I /api/health` (an uptime check) got 405."""
    user = await api.user()
    channel = f"stream:abcdefgh#{user}"
    assert (
        await api.client.post("/api/execute", json={"text": "hi", "channel": channel})
    ).is_success
    schema = api.app.openapi()
    gets = [
        path.replace("{stream_id}", "abcdefgh")
        for path, operations in schema["paths"].items()
        if "get" in operations
    ]
    assert {"/api/health", "/api/ready", "/api/config", "/api/streams/abcdefgh"} <= set(gets)
    for path in gets:
        get = await api.client.get(path)
        head = await api.client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"], path
    assert all("head" not in operations for operations in schema["paths"].values())


async def test_a_405_allows_every_method_the_path_answers(api: Api) -> None:
    """A review: a 405 said `Allow: GET` where HEAD works too (RFC 9110 15.5.6: Allow lists
    the methods the resource supports)."""
    schema = api.app.openapi()
    for path, operations in schema["paths"].items():
        methods = {method.upper() for method in operations}
        if "GET" in methods:
            methods.add("HEAD")
        response = await api.client.request("DELETE", path.replace("{stream_id}", "abcdefgh"))
        assert response.status_code == 405, path
        assert set(response.headers["allow"].split(", ")) == methods, path
        assert response.json() == {"detail": "Method Not Allowed"}


async def test_health_is_exactly_ok(api: Api) -> None:
    response = await api.client.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_follows_centrifugo(api: Api) -> None:
    assert (await api.client.get("/api/ready")).status_code == 200
    api.publisher.is_ready = False
    response = await api.client.get("/api/ready")
    assert response.status_code == 503
    assert "Centrifugo is not ready" in response.json()["detail"]


async def test_oversized_body_without_a_length_is_413_too(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(200):
            yield b"x" * 10_000
        yield b'"}'

    response = await api.client.post(
        "/api/execute", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_config_gives_the_limits_the_backend_applies(api: Api) -> None:
    response = await api.client.get("/api/config")

    assert response.status_code == 200
    assert response.json() == {
        "max_text_chars": 100,
        "max_history_turns": 20,
        "max_history_chars": 32000,
    }


@pytest.fixture
async def endless() -> AsyncIterator[Api]:
    async with running_app(ScriptedModel(endless=True, delay=0.01)) as api:
        yield api


async def test_cancel_stops_the_answer_with_done_cancelled(endless: Api) -> None:
    channel = f"stream:abcdefgh#{await endless.user()}"
    await endless.client.post("/api/execute", json={"text": "hello", "channel": channel})
    await endless.model.started.wait()

    response = await endless.client.post("/api/cancel", json={"channel": channel})

    assert response.status_code == 202
    assert response.json() == {"channel": channel}
    published = await endless.publisher.wait_for_done(channel)
    assert published[-1] == Done("cancelled")
    assert [item for item in published if isinstance(item, Done)] == [Done("cancelled")]
    assert endless.model.closed.is_set()
    again = await endless.client.post("/api/execute", json={"text": "hi", "channel": channel})
    assert again.status_code == 409  # a channel carries one answer
    assert "already carried an answer" in again.json()["detail"]


async def test_cancel_of_someone_elses_channel_is_403_and_it_keeps_streaming(
    endless: Api,
) -> None:
    channel = f"stream:abcdefgh#{await endless.user()}"
    await endless.client.post("/api/execute", json={"text": "hello", "channel": channel})
    endless.client.cookies.clear()  # another browser: another user
    await endless.user()

    response = await endless.client.post("/api/cancel", json={"channel": channel})

    assert response.status_code == 403
    assert "another user" in response.json()["detail"]
    assert channel in endless.streams
    assert not endless.model.closed.is_set()


async def test_cancel_where_nothing_runs_is_404(endless: Api) -> None:
    channel = f"stream:abcdefgh#{await endless.user()}"

    response = await endless.client.post("/api/cancel", json={"channel": channel})

    assert response.status_code == 404
    assert "no answer is streaming" in response.json()["detail"]


async def test_execute_while_stopping_says_so_even_with_centrifugo_unreachable(api: Api) -> None:
    """review78 L7: the 503 named Centrifugo, without Retry-After, so the page took the prompt
    as refused; a process that is stopping says so first (its page sends the prompt again)."""
    channel = f"stream:abcdefgh#{await api.user()}"
    api.publisher.is_ready = False
    api.app.state.services.capacity.close()

    response = await api.client.post("/api/execute", json={"text": "hello", "channel": channel})

    assert response.status_code == 503
    assert response.json()["detail"].startswith("the server is stopping")
    assert response.headers["retry-after"] == "5"
    assert api.model.questions == []


async def test_cancel_of_a_malformed_channel_is_422(endless: Api) -> None:
    await endless.user()

    response = await endless.client.post("/api/cancel", json={"channel": "stream:x"})

    assert response.status_code == 422
    assert "channel: must look like" in response.json()["detail"]


async def test_execute_while_centrifugo_is_unreachable_is_503_and_starts_nothing(api: Api) -> None:
    channel = f"stream:abcdefgh#{await api.user()}"
    api.publisher.is_ready = False

    response = await api.client.post("/api/execute", json={"text": "hello", "channel": channel})

    assert response.status_code == 503
    assert "cannot be delivered right now" in response.json()["detail"]
    assert api.model.questions == []
    assert channel not in api.streams


async def _execute_asgi(api: Api, channel: str, request_start: str, *, gone: bool) -> int:
    """POST /api/execute straight into the app, from a client that is still there or gone (its
    connection closed, as nginx closes it when it gives up); the response's status."""
    body = json.dumps({"text": "hello", "channel": channel}).encode()
    cookies = "; ".join(f"{name}={value}" for name, value in api.client.cookies.items())
    messages: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]
    still_there = asyncio.Event()

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if not gone:
            await still_there.wait()
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [
        (b"host", b"test"),
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cookie", cookies.encode()),
        (b"x-request-start", request_start.encode()),
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/execute",
        "raw_path": b"/api/execute",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }
    await api.app(scope, receive, send)
    status = sent[0]["status"]
    assert isinstance(status, int)
    return status


@pytest.mark.parametrize(
    ("waited", "gone", "status"),
    [(10.0, True, 503), (10.0, False, 202), (0.1, True, 202), (None, True, 202)],
    ids=["late-and-gone", "late-but-waited-for", "on-time", "unreadable-time"],
)
async def test_an_execute_read_after_nginx_gave_up_on_it_starts_nothing(
    api: Api, waited: float | None, gone: bool, status: int
) -> None:
    """nginx says when it sent the request (X-Request-Start, `t=` its `$msec`), answers the
    client 504 after 8 s and closes its connection; an execute read after that (the backend was
    paused) is refused, not run for nobody. One nginx still waits for (sent on to this backend
    after another's connect timed out, or a clock ahead of nginx's) goes ahead: the connection,
    not the clocks, decides; the header only says when to ask (an on-time one is not asked)."""
    channel = f"stream:abcdefgh#{await api.user()}"
    sent = "t=yesterday" if waited is None else f"t={time.time() - waited:.3f}"

    assert await _execute_asgi(api, channel, sent, gone=gone) == status

    if status == 503:
        assert api.model.questions == []
        assert channel not in api.streams
    else:
        await api.publisher.wait_for_done(channel)


async def test_the_owner_reads_the_snapshot_of_a_finished_answer(api: Api) -> None:
    channel = f"stream:abcdefgh#{await api.user()}"
    await api.client.post("/api/execute", json={"text": "hello", "channel": channel})
    await api.publisher.wait_for_done(channel)

    response = await api.client.get("/api/streams/abcdefgh")

    assert response.status_code == 200
    assert response.json() == {
        "text": "Hello there",
        "thinking": "",
        "seq": 2,
        "done": {"reason": "complete", "error": None},
    }


async def test_a_running_answers_snapshot_has_no_done(endless: Api) -> None:
    channel = f"stream:abcdefgh#{await endless.user()}"
    await endless.client.post("/api/execute", json={"text": "hello", "channel": channel})
    await endless.publisher.wait_for_first(channel)

    body = (await endless.client.get("/api/streams/abcdefgh")).json()

    assert body["done"] is None
    assert body["seq"] >= 1
    # One chunk per token (no coalescing window here): exactly the first `seq` tokens.
    assert body["text"] == "".join(["Hello ", "world"][i % 2] for i in range(body["seq"]))


async def test_no_response_of_the_api_may_be_kept_by_a_cache(endless: Api) -> None:
    """A security probe: a snapshot, one user's answer, came without Cache-Control (only a
    response that renewed the session had one), so a shared cache in front could keep it."""
    channel = f"stream:abcdefgh#{await endless.user()}"
    await endless.client.post("/api/execute", json={"text": "hello", "channel": channel})
    await endless.publisher.wait_for_first(channel)
    statuses: list[int] = []
    for response in [
        await endless.client.get("/api/streams/abcdefgh"),
        await endless.client.get("/api/streams/zzzzzzzz"),  # a 404
        await endless.client.get("/api/config"),
        await endless.client.post("/api/cancel", json={"channel": channel}),
        await endless.client.post("/api/token"),
        await endless.client.post(  # refused by a middleware: 413, 415, 403
            "/api/execute", content=b"x" * 600_000, headers={"content-type": "application/json"}
        ),
        await endless.client.post(
            "/api/execute", content=b"{}", headers={"content-encoding": "gzip"}
        ),
        await endless.client.post("/api/cancel", json={}, headers={"sec-fetch-site": "cross-site"}),
    ]:
        assert response.headers["cache-control"] == "private, no-store", response.request.url
        statuses.append(response.status_code)
    assert statuses[-3:] == [413, 415, 403]


class _RecoveringRegistry(LocalStreams):
    """A shared registry right after Redis lost its data, or one that cannot be reached."""

    async def snapshot(self, channel: str) -> Snapshot | None:
        raise StreamsRecovering(f"{channel} may be running")

    async def stop(self, channel: str, done: Done) -> bool:
        raise StreamsUnavailable("Connection refused")


async def test_a_registry_that_cannot_tell_yet_is_503_with_a_reason() -> None:
    """Not a 404: the page would end an answer that may well be running (docs/scaling.md)."""
    async with running_app(ScriptedModel([Token("a")]), _RecoveringRegistry()) as api:
        channel = f"stream:abcdefgh#{await api.user()}"
        snapshot = await api.client.get("/api/streams/abcdefgh")
        cancel = await api.client.post("/api/cancel", json={"channel": channel})

    assert snapshot.status_code == 503
    assert snapshot.json()["detail"] == (
        "the streams registry is being rebuilt after a restart; try again in a few seconds"
    )
    assert cancel.status_code == 503
    assert "cannot be reached" in cancel.json()["detail"]


async def test_someone_elses_or_an_unknown_stream_is_404(api: Api) -> None:
    channel = f"stream:abcdefgh#{await api.user()}"
    await api.client.post("/api/execute", json={"text": "hello", "channel": channel})
    await api.publisher.wait_for_done(channel)
    api.client.cookies.clear()  # another browser: another user
    await api.user()

    response = await api.client.get("/api/streams/abcdefgh")

    assert response.status_code == 404
    assert "no answer is known" in response.json()["detail"]
    assert (await api.client.get("/api/streams/bad!id")).status_code == 422
