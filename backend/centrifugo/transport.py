"""A lean httpx transport for Centrifugo's server API: plain keep-alive HTTP/1.1 connections,
replies parsed by httptools (the parser uvicorn serves with).

Why not httpx's own transport: through httpcore and anyio one `POST /api/batch` to Centrifugo
on loopback cost ~570 us of the caller's CPU on the 2-core machine of README "Benchmarks", and
it yielded to the event loop several times before its first byte was written (each yield waits
for every other ready task, which under load is many). Here the request is written in the
caller's own step, and a call costs ~250 us, httpx's client (~85 us) included.

What it does not do, because the server API does not need it: proxies, HTTP/2, streamed
request or response bodies (a reply is read whole), Expect/100-continue, upgrades. TLS works
(an `https` API URL). The publisher sends one batch at a time, so one connection is used
almost always; a concurrent call (the readiness check) opens another, and idle ones are kept up
to `max_idle` per server. A kept-alive connection that turns out closed before any byte of the
reply (the server's idle timeout: it never read the request) is replaced by a new one, once.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, cast

import httptools
import httpx

_Origin = tuple[str, str, int]
# status, headers, body, keep-alive
_Reply = tuple[int, list[tuple[bytes, bytes]], bytes, bool]
# Set in a request's `extensions` by a caller for whom sending it twice is harmless (the
# publisher: a read-only call, or publications that all carry idempotency keys).
RESEND_IF_STALE = "relaychat.resend_if_stale"
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})


class _ClosedBeforeReply(httpx.ReadError):
    """The connection ended before a byte of the reply came: on a kept-alive connection, most
    likely the server had closed it while idle (its idle timeout)."""


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, its reply read whole."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._reply: asyncio.Future[_Reply] | None = None
        self._parser: Any = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._answered = False  # a byte of the reply has come
        self._headers_done = False
        self._framed = False  # the reply says where its body ends (length or chunks)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # nothing was asked: the server is confused; stop using it
            self.close()
            return
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(httpx.RemoteProtocolError("Centrifugo's reply switched protocols"))
            self.close()
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"Centrifugo's reply is not HTTP ({exc})"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._reply is None or self._reply.done():
            return
        if self._headers_done and not self._framed:  # its body ended with the connection
            status = self._parser.get_status_code()
            self._settle((status, self._headers, b"".join(self._body), False))
        elif self._answered:
            self._fail(httpx.ReadError("the connection closed before the reply was complete"))
        else:
            self._fail(_ClosedBeforeReply("the connection closed before any reply"))

    # httptools' parser callbacks

    def on_message_begin(self) -> None:
        if self._reply is None:  # more bytes after the reply: do not trust this connection
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._reply is not None:
            self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._framed = any(name.lower() in _FRAMING for name, _ in self._headers)

    def on_body(self, body: bytes) -> None:
        if self._reply is not None:
            self._body.append(body)

    def on_message_complete(self) -> None:
        parser = self._parser
        if self._reply is None or parser is None:
            return
        status = parser.get_status_code()
        if 100 <= status < 200:  # an interim reply (100 Continue): the real one follows
            self._headers, self._body = [], []
            self._headers_done = self._framed = False
            return
        self._settle((status, self._headers, b"".join(self._body), parser.should_keep_alive()))

    # the caller's side

    def send(self, request: bytes) -> asyncio.Future[_Reply]:
        """Write `request` now; the future is its reply (status, headers, body, keep-alive)."""
        assert self.transport is not None
        self._headers, self._body = [], []
        self._answered = self._headers_done = self._framed = False
        self._parser = httptools.HttpResponseParser(self)
        self._reply = asyncio.get_running_loop().create_future()
        if self.transport.is_closing():  # a write would be dropped without a word
            self._fail(_ClosedBeforeReply("the connection was closed"))
        else:
            self.transport.write(request)
        return self._reply

    def transport_closing(self) -> bool:
        return self.transport is None or self.transport.is_closing()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _settle(self, reply: _Reply) -> None:
        future, self._reply = self._reply, None
        if future is not None and not future.done():
            future.set_result(reply)

    def _fail(self, error: Exception) -> None:
        future, self._reply, self._parser = self._reply, None, None
        if future is not None and not future.done():
            future.set_exception(error)


class ServerApiTransport(httpx.AsyncBaseTransport):
    """httpx's `AsyncBaseTransport` for short request/reply calls (Centrifugo's server API).
    Timeouts come from the client (`httpx.Timeout`): `connect` for a new connection, `read`
    for the whole reply. Failures are httpx's own exceptions (ConnectError, ConnectTimeout,
    ReadTimeout, ReadError, RemoteProtocolError, LocalProtocolError), as with httpx's default
    transport. A request whose `extensions` set `RESEND_IF_STALE` is sent once more, on a new
    connection, when a kept-alive connection closes before any byte of its reply."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None, max_idle: int = 4) -> None:
        self._ssl_context = ssl_context
        self._max_idle = max_idle
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._busy: set[_Connection] = set()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._closed:
            raise httpx.ConnectError("the transport is closed", request=request)
        if request.method == "HEAD":  # its reply has no body, which the parser cannot be told
            raise httpx.LocalProtocolError("HEAD is not supported here", request=request)
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()  # whole: sent with its length, never in chunks
        head = [request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in request.headers.raw:
            if name.lower() in _FRAMING:
                continue
            if b"\r" in name or b"\n" in name or b"\r" in value or b"\n" in value:
                error = "a request header contains a line break"
                raise httpx.LocalProtocolError(error, request=request)
            head += [name, b": ", value, b"\r\n"]
        if body or request.method in ("POST", "PUT", "PATCH"):
            head += [b"Content-Length: ", str(len(body)).encode(), b"\r\n"]
        head.append(b"\r\n")
        message = b"".join(head) + body

        connection = self._take(origin)
        if connection is not None:
            try:
                return await self._exchange(request, connection, origin, message, timeouts)
            except _ClosedBeforeReply as exc:
                if self._closed or not request.extensions.get(RESEND_IF_STALE):
                    raise httpx.ReadError(str(exc), request=request) from exc
                # Most likely closed by the server while idle: once more, on a new connection.
        connection = await self._connect(request, origin, timeouts)
        try:
            return await self._exchange(request, connection, origin, message, timeouts)
        except _ClosedBeforeReply as exc:
            raise httpx.ReadError(str(exc), request=request) from exc

    async def _exchange(
        self,
        request: httpx.Request,
        connection: _Connection,
        origin: _Origin,
        message: bytes,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        # Written now, in this step: no other task runs between the caller and the socket.
        self._busy.add(connection)
        try:
            async with asyncio.timeout(timeouts.get("read")):
                status, headers, content, keep_alive = await connection.send(message)
        except TimeoutError as exc:
            connection.close()
            raise httpx.ReadTimeout("Centrifugo did not answer in time", request=request) from exc
        except httpx.TransportError as exc:
            connection.close()
            exc.request = request
            raise
        except BaseException:  # cancelled mid-call: the reply may still come; not reusable
            connection.close()
            raise
        finally:
            self._busy.discard(connection)
        if keep_alive and not connection.closed and not self._closed:
            self._put(origin, connection)
        else:
            connection.close()
        return httpx.Response(status, headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        """Close every connection, the idle ones and those waiting for a reply (their calls
        fail with `ReadError`)."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        for connection in list(self._busy):
            connection.close()

    def _take(self, origin: _Origin) -> _Connection | None:
        connections = self._idle.get(origin)
        while connections:
            connection = connections.pop()
            if not connection.closed and not connection.transport_closing():
                return connection
        return None

    def _put(self, origin: _Origin, connection: _Connection) -> None:
        connections = self._idle.setdefault(origin, [])
        if len(connections) < self._max_idle:
            connections.append(connection)
        else:
            connection.close()

    async def _connect(
        self, request: httpx.Request, origin: _Origin, timeouts: dict[str, float | None]
    ) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            context = self._ssl_context
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError as exc:
            message = f"connecting to {host}:{port} timed out"
            raise httpx.ConnectTimeout(message, request=request) from exc
        except (OSError, ssl.SSLError) as exc:
            message = f"cannot connect to {host}:{port} ({exc})"
            raise httpx.ConnectError(message, request=request) from exc
        return connection
