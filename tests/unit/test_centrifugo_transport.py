"""The lean transport for Centrifugo's server API against a tiny HTTP server on loopback in the
test's own process: what it sends, the replies it reads, connection reuse, and every way a call
can fail (as httpx's own exceptions, which the publisher handles)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from backend.centrifugo.publisher import CentrifugoPublisher
from backend.centrifugo.transport import RESEND_IF_STALE, ServerApiTransport
from backend.core.ports import PublishError
from backend.core.types import Chunk


@dataclass
class Received:
    head: bytes
    body: bytes


# How the server answers one request: the raw bytes to write, or None to close without a reply
# (or "hang" to never answer).
Answer = Callable[[Received], bytes | str | None]


def reply(status: int, body: bytes, *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class Server:
    answer: Answer
    connections: int = 0
    requests: list[Received] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    handlers: list[asyncio.Task[None]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            self.handlers.append(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.lower() == b"content-length":
                        length = int(value)
                received = Received(head, await reader.readexactly(length))
                self.requests.append(received)
                answer = self.answer(received)
                if answer == "hang":
                    await asyncio.sleep(3600)
                if not isinstance(answer, bytes):
                    break
                writer.write(answer)
                await writer.drain()
                if b"connection: close" in answer.lower():
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[Server]]]:
    """Starts a server answering with `answer`; all of them are closed after the test."""
    started: list[tuple[asyncio.Server, Server]] = []

    async def start(answer: Answer) -> Server:
        server = Server(answer)
        listener = await asyncio.start_server(server.serve, "127.0.0.1", 0)
        server.port = listener.sockets[0].getsockname()[1]
        started.append((listener, server))
        return server

    yield start
    for listener, server in started:
        listener.close()
        for writer in server.writers:
            writer.close()
        for handler in server.handlers:  # a server told to hang is still waiting
            handler.cancel()
        await asyncio.gather(*server.handlers, return_exceptions=True)
        await listener.wait_closed()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=ServerApiTransport(), timeout=0.5) as client:
        yield client


def ok_json(received: Received) -> bytes:
    return reply(200, json.dumps({"echo": json.loads(received.body)}).encode())


async def test_posts_headers_and_body_and_reads_the_reply(serve, client) -> None:
    server = await serve(ok_json)
    response = await client.post(
        f"{server.url}/batch", content=b'{"commands":[]}', headers={"X-API-Key": "secret"}
    )
    assert response.status_code == 200
    assert response.json() == {"echo": {"commands": []}}
    (request,) = server.requests
    lines = request.head.decode().split("\r\n")
    assert lines[0] == "POST /api/batch HTTP/1.1"
    headers = {
        k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    assert headers["x-api-key"] == "secret"
    assert headers["content-length"] == "15"
    assert headers["host"] == f"127.0.0.1:{server.port}"


async def test_one_connection_is_kept_alive_for_sequential_calls(serve, client) -> None:
    server = await serve(ok_json)
    for i in range(5):
        response = await client.post(f"{server.url}/batch", content=json.dumps({"i": i}))
        assert response.json() == {"echo": {"i": i}}
    assert server.connections == 1


async def test_concurrent_calls_use_a_connection_each_and_keep_them(serve, client) -> None:
    server = await serve(ok_json)
    replies = await asyncio.gather(
        *(client.post(f"{server.url}/info", content=json.dumps({"n": n})) for n in range(3))
    )
    assert [r.json()["echo"]["n"] for r in replies] == [0, 1, 2]
    assert server.connections == 3
    for n in range(3):  # the idle ones are reused
        await client.post(f"{server.url}/info", content=json.dumps({"n": n}))
    assert server.connections == 3


async def test_a_chunked_reply_is_read_whole(serve, client) -> None:
    body = b'{"replies":[{"publish":{}}]}'
    chunked = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:7], body[7:])
    )
    answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked + b"0\r\n\r\n"
    server = await serve(lambda _: answer)
    for _ in range(2):
        response = await client.post(f"{server.url}/batch", content=b"{}")
        assert response.json() == {"replies": [{"publish": {}}]}
    assert server.connections == 1


async def test_a_reply_that_closes_the_connection_is_not_reused(serve, client) -> None:
    server = await serve(lambda r: reply(200, b"{}", "Connection: close"))
    for _ in range(3):
        assert (await client.post(f"{server.url}/info", content=b"{}")).status_code == 200
    assert server.connections == 3


async def test_an_idle_connection_the_server_closed_is_not_used_again(serve, client) -> None:
    server = await serve(ok_json)
    await client.post(f"{server.url}/info", content=b"{}")
    server.writers[0].close()  # the server's idle timeout
    await server.writers[0].wait_closed()
    async with asyncio.timeout(1):  # until the close reaches the client's side
        while not _idle_closed(client):  # noqa: ASYNC110  # the transport has no event for it
            await asyncio.sleep(0)
    assert (await client.post(f"{server.url}/info", content=b"{}")).json() == {"echo": {}}
    assert server.connections == 2


def _idle_closed(client: httpx.AsyncClient) -> bool:
    transport = client._transport  # the test looks at the pool it built
    assert isinstance(transport, ServerApiTransport)
    return all(c.closed for conns in transport._idle.values() for c in conns)


def drops_second_request_per_connection(server_ref: list[Server]) -> Answer:
    """Answers the first request on each connection and drops the connection on the second
    without a reply, as a server does that closes an idle connection as a request comes."""
    per_connection: dict[int, int] = {}

    def answer(received: Received) -> bytes | None:
        n = server_ref[0].connections
        per_connection[n] = per_connection.get(n, 0) + 1
        return ok_json(received) if per_connection[n] == 1 else None

    return answer


async def test_a_stale_kept_alive_connection_is_replaced_once_when_resending_is_safe(
    serve, client
) -> None:
    ref: list[Server] = []
    server = await serve(drops_second_request_per_connection(ref))
    ref.append(server)
    for i in range(3):
        response = await client.post(
            f"{server.url}/batch",
            content=json.dumps({"i": i}),
            extensions={RESEND_IF_STALE: True},
        )
        assert response.json() == {"echo": {"i": i}}
    assert server.connections == 3
    sent = [json.loads(r.body)["i"] for r in server.requests]
    assert sent == [0, 1, 1, 2, 2]


async def test_a_stale_connection_is_a_read_error_unless_resending_is_safe(serve, client) -> None:
    ref: list[Server] = []
    server = await serve(drops_second_request_per_connection(ref))
    ref.append(server)
    await client.post(f"{server.url}/batch", content=b"{}")
    with pytest.raises(httpx.ReadError) as caught:
        await client.post(f"{server.url}/batch", content=b"{}")
    assert type(caught.value) is httpx.ReadError  # not the transport's own class, in logs
    assert len(server.requests) == 2  # not sent again


async def test_a_reply_whose_body_ends_with_the_connection_is_read(serve, client) -> None:
    server = await serve(lambda _: b"HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\nno entry")
    response = await client.post(f"{server.url}/batch", content=b"{}")
    assert (response.status_code, response.text) == (403, "no entry")


async def test_an_interim_reply_is_skipped(serve, client) -> None:
    server = await serve(lambda _: b"HTTP/1.1 100 Continue\r\n\r\n" + reply(200, b'{"ok":1}'))
    response = await client.post(f"{server.url}/batch", content=b"{}")
    assert (response.status_code, response.json()) == (200, {"ok": 1})


async def test_switching_protocols_is_a_protocol_error(serve, client) -> None:
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"
    server = await serve(lambda _: answer)
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(f"{server.url}/batch", content=b"{}")


async def test_bytes_after_the_reply_leave_it_whole_and_the_connection_unused(
    serve, client
) -> None:
    extra = reply(200, b"{}") + b"HTTP/1.1 200 OK\r\nX-Extra: 1\r\nContent-Length: 0\r\n\r\n"
    answers = iter([extra])

    def answer(received: Received) -> bytes:
        return next(answers, None) or ok_json(received)

    server = await serve(answer)
    response = await client.post(f"{server.url}/batch", content=b"{}")
    assert response.headers.get_list("content-length") == ["2"]
    assert "x-extra" not in response.headers
    assert (await client.post(f"{server.url}/batch", content=b"{}")).json() == {"echo": {}}
    assert server.connections == 2


@pytest.mark.parametrize("resend", [False, True])
async def test_closing_the_transport_ends_calls_waiting_for_a_reply(serve, resend: bool) -> None:
    answers = iter([ok_json])

    def answer(received: Received) -> bytes | str:
        return next(answers, lambda _: "hang")(received)

    server = await serve(answer)
    transport = ServerApiTransport()
    async with httpx.AsyncClient(transport=transport, timeout=5) as client:
        await client.post(f"{server.url}/info", content=b"{}")  # a kept-alive connection
        call = asyncio.create_task(
            client.post(f"{server.url}/info", content=b"{}", extensions={RESEND_IF_STALE: resend})
        )
        async with asyncio.timeout(1):
            while len(server.requests) < 2:  # noqa: ASYNC110  # until the server has it
                await asyncio.sleep(0)
        await transport.aclose()
        with pytest.raises(httpx.ReadError):
            async with asyncio.timeout(1):
                await call


async def test_a_header_with_a_line_break_is_refused(serve, client) -> None:
    server = await serve(ok_json)
    with pytest.raises(httpx.LocalProtocolError):
        await client.post(f"{server.url}/info", content=b"{}", headers={"X-API-Key": "a\nb"})
    assert not server.requests


async def test_a_streamed_body_is_sent_whole_with_its_length(serve, client) -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b'{"a":'
        yield b"1}"

    server = await serve(ok_json)
    response = await client.post(f"{server.url}/info", content=parts())
    assert response.json() == {"echo": {"a": 1}}
    head = server.requests[0].head.lower()
    assert b"content-length: 7" in head
    assert b"transfer-encoding" not in head


async def test_head_is_refused(serve, client) -> None:
    server = await serve(ok_json)
    with pytest.raises(httpx.LocalProtocolError, match="HEAD"):
        await client.head(f"{server.url}/info")


async def test_a_new_connection_closed_before_the_reply_is_not_tried_again(serve, client) -> None:
    server = await serve(lambda _: None)
    with pytest.raises(httpx.ReadError):
        await client.post(f"{server.url}/batch", content=b"{}")
    assert server.connections == 1


async def test_error_statuses_are_replies_not_exceptions(serve, client) -> None:
    server = await serve(lambda _: reply(401, b"Unauthorized"))
    response = await client.post(f"{server.url}/batch", content=b"{}")
    assert (response.status_code, response.text) == (401, "Unauthorized")


async def test_closed_without_a_reply_is_a_read_error(serve, client) -> None:
    server = await serve(lambda _: None)
    with pytest.raises(httpx.ReadError):
        await client.post(f"{server.url}/batch", content=b"{}")


async def test_a_reply_cut_short_is_a_read_error(serve, client) -> None:
    cut = b'HTTP/1.1 200 OK\r\nContent-Length: 99\r\nConnection: close\r\n\r\n{"rep'
    server = await serve(lambda _: cut)
    with pytest.raises(httpx.ReadError):
        await client.post(f"{server.url}/batch", content=b"{}")


async def test_no_reply_in_time_is_a_read_timeout(serve, client) -> None:
    server = await serve(lambda _: "hang")
    with pytest.raises(httpx.ReadTimeout):
        await client.post(f"{server.url}/batch", content=b"{}", timeout=0.05)
    # The late connection is not reused: the next call gets a new one.
    server.answer = ok_json
    assert (await client.post(f"{server.url}/batch", content=b"{}")).status_code == 200
    assert server.connections == 2


async def test_a_reply_that_is_not_http_is_a_protocol_error(serve, client) -> None:
    server = await serve(lambda _: b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(f"{server.url}/batch", content=b"{}")


async def test_nobody_listening_is_a_connect_error(client) -> None:
    listener = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    listener.close()
    await listener.wait_closed()
    with pytest.raises(httpx.ConnectError):
        await client.post(f"http://127.0.0.1:{port}/api/info", content=b"{}")


async def test_a_closed_transport_refuses_calls_and_closes_its_connections(serve) -> None:
    server = await serve(ok_json)
    transport = ServerApiTransport()
    async with httpx.AsyncClient(transport=transport, timeout=0.5) as client:
        await client.post(f"{server.url}/info", content=b"{}")
    assert not transport._idle  # its connections were closed
    with pytest.raises(httpx.ConnectError, match="closed"):
        await transport.handle_async_request(httpx.Request("POST", f"{server.url}/info"))


async def test_the_publisher_over_it_publishes_and_rides_out_a_refused_connection(serve) -> None:
    def centrifugo(received: Received) -> bytes:
        commands = json.loads(received.body)["commands"]
        return reply(200, json.dumps({"replies": [{"publish": {}} for _ in commands]}).encode())

    server = await serve(centrifugo)
    async with httpx.AsyncClient(transport=ServerApiTransport(), timeout=0.5) as client:
        publisher = CentrifugoPublisher(client, server.url, "key", outage_seconds=0.2)
        await publisher.publish("stream:abcdefgh#u1", Chunk("hi", seq=1), idempotency_key="k:1")
        (request,) = server.requests
        assert json.loads(request.body)["commands"][0]["publish"]["channel"] == "stream:abcdefgh#u1"
        down = CentrifugoPublisher(client, "http://127.0.0.1:9/api", "key", outage_seconds=0.1)
        with pytest.raises(PublishError, match="cannot reach Centrifugo"):
            await down.publish("stream:abcdefgh#u1", Chunk("hi", seq=1), idempotency_key="k:2")
        await publisher.aclose()
        await down.aclose()
