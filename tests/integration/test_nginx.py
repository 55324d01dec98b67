"""The public entry: nginx with the project's template in front of the real backend and
Centrifugo. Only the page, /api/ and /connection/ are reachable through it."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from centrifuge import Client

from backend.http_protocol import UNREADABLE
from backend.llm.simulated import answer_for
from scripts import system_commands
from scripts.run import trusted_proxy
from tests.clients import ChatSession, answer_of
from tests.processes import (
    ROOT,
    Server,
    clean_environment,
    free_port,
    ipv6_loopback,
    missing_component,
    running,
)
from tests.stack import ORIGIN, Edge, Stack, another_backend, nginx_in_front


@pytest.fixture
async def http(edge: Edge) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as client:
        await client.post("/api/token")  # a session: every route that answers needs one
        yield client


async def test_chat_through_nginx_websocket_and_api(edge: Edge) -> None:
    async with ChatSession.open(edge.url, edge.websocket_url, edge.url) as chat:
        publications = await chat.ask("streaming", thinking=True)
    assert answer_of(publications) == answer_for("streaming")
    assert publications[-1] == {
        "text": "",
        "done": True,
        "reason": "complete",
        "seq": len(publications) - 1,
    }


@pytest.mark.parametrize("path", ["/api/publish", "/api/batch", "/api/info", "/api/history"])
async def test_centrifugo_server_api_is_not_reachable(
    http: httpx.AsyncClient, edge: Edge, path: str
) -> None:
    # Even with the right key: these paths go to the backend, which has no such routes.
    response = await http.post(
        path,
        json={"channel": "stream:abcdefgh#u_x", "data": {"text": "x"}},
        headers={"X-API-Key": edge.stack.api_key},
    )
    assert response.status_code in {404, 405}
    assert "result" not in response.text


@pytest.mark.parametrize("path", ["/centrifugo/subscribe", "/api/../centrifugo/subscribe"])
async def test_the_backend_s_subscribe_proxy_is_not_reachable(
    http: httpx.AsyncClient, edge: Edge, path: str
) -> None:
    """Centrifugo's alone: through nginx it is nobody's (backend/centrifugo/subscriptions.py)."""
    user = (await http.post("/api/token")).json()["user"]
    body = {"user": user, "channel": f"stream:abcdefgh#{user}"}
    response = await http.post(path, json=body)
    assert response.status_code == 404
    assert "result" not in response.text


@pytest.mark.parametrize(
    "path", ["/admin", "/admin/", "/metrics", "/health", "/connection/api/publish", "/api/../admin"]
)
async def test_centrifugo_admin_metrics_and_health_are_not_reachable(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.get(path)
    assert response.status_code == 404


async def test_the_page_has_security_headers_and_is_not_cached(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 200
    assert "<title>relaychat</title>" in response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    assert "server" not in response.headers or "nginx/" not in response.headers["server"]


async def test_assets_are_cached_and_carry_the_headers_too(http: httpx.AsyncClient) -> None:
    page = (await http.get("/")).text
    script = page.split('src="', 1)[1].split('"', 1)[0]
    assert script.startswith("/assets/app-")
    response = await http.get(script)
    assert response.status_code == 200
    assert "max-age=" in response.headers["cache-control"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" in response.headers


async def test_api_errors_pass_through_as_json(http: httpx.AsyncClient) -> None:
    await http.post("/api/token")
    response = await http.post("/api/execute", json={"text": " ", "channel": "nope"})
    assert response.status_code == 422
    assert "channel" in response.json()["detail"]


async def test_bodies_over_the_limit_stop_at_nginx(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/execute", content=b"x" * 600_000, headers={"content-type": "application/json"}
    )  # over the default limit, 497,664 bytes
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_sse_passes_through_nginx_unbuffered(http: httpx.AsyncClient) -> None:
    """A buffering proxy would hold the events back and hand them over in one go at the end."""
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, str]] = []
    start = loop.time()
    async with http.stream("POST", "/api/chat", json={"prompt": "hello"}) as response:
        # (nginx consumes the backend's X-Accel-Buffering header; it does not reach clients.)
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line:
                arrivals.append((loop.time() - start, line))
    assert arrivals[-1][1] == "data: [DONE]"
    answer = "".join(json.loads(line[6:])["token"] for _, line in arrivals[:-1])
    assert answer == answer_for("hello")
    total = arrivals[-1][0]
    assert arrivals[0][0] < total / 2  # the first words came long before the last
    assert len({round(at, 2) for at, _ in arrivals}) >= 5  # in many separate deliveries


def test_the_page_is_served_from_a_checkout_under_a_private_directory(
    stack: Stack, tmp_path: Path
) -> None:
    """A checkout under a directory only its owner may enter (root's home, run as root): nginx's
    workers must still read the page. Regression: they ran as `nobody` and every request was a
    bare 404."""
    home = tmp_path / "home"
    dist = home / "relaychat" / "frontend" / "dist"
    dist.mkdir(parents=True)
    home.chmod(0o700)
    (dist / "index.html").write_text("<!doctype html><title>relaychat</title>checkout page\n")

    with nginx_in_front(stack, stack.backend_url, free_port(), tmp_path / "nginx", dist) as front:
        page = httpx.get(f"{front.url}/")

    assert page.status_code == 200
    assert "checkout page" in page.text


async def test_a_client_over_the_rate_gets_429_as_json(stack: Stack, tmp_path: Path) -> None:
    """/api/ and new WebSocket connections are rate-limited per client address (an nginx of
    its own: the limit's state must not spill into other tests)."""
    with nginx_in_front(stack, stack.backend_url, free_port(), tmp_path / "nginx") as front:
        # 30 s: under a loaded CI run a connection's SYN was retried (1, 2, 4 s) and its
        # request waited past 10 s for one of the pool's 100 connections (a PoolTimeout).
        async with httpx.AsyncClient(base_url=front.url, timeout=30) as http:
            # Waves of 300 until one is refused: a loaded CI run took over 4 s for the first
            # 300 (the burst of 100 and 50 a second more let them all through).
            api: list[httpx.Response] = []
            for _ in range(5):
                api += await asyncio.gather(*(http.get("/api/health") for _ in range(300)))
                if any(response.status_code == 429 for response in api):
                    break
            ws: list[httpx.Response] = []
            for _ in range(3):  # handshakes refused beyond 10 a second and a burst of 50
                ws += await asyncio.gather(*(http.get("/connection/websocket") for _ in range(150)))
                if any(response.status_code == 429 for response in ws):
                    break
    statuses = [response.status_code for response in api]
    assert statuses.count(200) >= 100  # the burst passes
    refused = [response for response in api if response.status_code == 429]
    assert refused, statuses
    assert refused[0].json()["detail"].startswith("too many requests from this address")
    assert refused[0].headers["retry-after"] == "1"
    assert refused[0].headers["x-content-type-options"] == "nosniff"  # the server's headers too
    assert "frame-ancestors 'none'" in refused[0].headers["content-security-policy"]
    assert 429 in [response.status_code for response in ws]


async def test_one_client_holds_at_most_200_websockets(stack: Stack, tmp_path: Path) -> None:
    """An outside-in probe held 400 live WebSockets from one address in 35 s, and could go on
    until Centrifugo and nginx ran out of file descriptors for everyone. Now the 201st is
    refused (429, as JSON), from that address only, until one of its 200 closes."""
    busy, other = "192.0.2.7", "192.0.2.8"
    with nginx_in_front(stack, stack.backend_url, free_port(), tmp_path / "nginx") as front:
        async with httpx.AsyncClient(base_url=front.url, timeout=10) as http:
            token = (await http.post("/api/token")).json()["token"]
            headers = {"Origin": ORIGIN, "X-Forwarded-For": busy}  # one Centrifugo allows

            async def held() -> Client:
                client = Client(front.websocket_url, token=token, headers=headers, proxy=None)
                await client.connect()
                await client.ready(10)
                return client

            # As fast as the rate of new ones lets one client: a burst of 50, then 10 a second.
            clients = list(await asyncio.gather(*(held() for _ in range(50))))
            while len(clients) < 200:
                clients.append(await held())
                await asyncio.sleep(0.11)
            try:
                # The rate's burst spent above is given back at 10 a second: after 5 s a
                # refusal can only be for the sockets held.
                await asyncio.sleep(5.5)

                async def handshake(client: str) -> httpx.Response:
                    return await http.get(
                        "/connection/websocket", headers={"X-Forwarded-For": client}
                    )

                refused = await handshake(busy)
                assert refused.status_code == 429, refused.text
                assert refused.json()["detail"].startswith("too many requests from this address")
                assert (await handshake(other)).status_code != 429
                await clients.pop().disconnect()
                for _ in range(25):  # until nginx has seen it close, within the rate
                    if (await handshake(busy)).status_code != 429:
                        break
                    await asyncio.sleep(0.2)
                else:
                    pytest.fail("still refused 5 s after one of the 200 closed")
            finally:
                await asyncio.gather(*(client.disconnect() for client in clients))


@pytest.mark.parametrize(
    ("trusted", "others_refused"), [("127.0.0.1", False), ("192.0.2.250", True)]
)
async def test_behind_a_trusted_proxy_each_client_has_a_rate_of_its_own(
    stack: Stack, tmp_path: Path, trusted: str, others_refused: bool
) -> None:
    """Behind the operator's TLS proxy every request came from the proxy: one rate for all
    clients (deployment review). The client named in X-Forwarded-For counts when the request
    comes from NGINX_TRUSTED_PROXY, and only then (here the proxy is on loopback)."""
    with nginx_in_front(
        stack, stack.backend_url, free_port(), tmp_path / "nginx", trusted_proxy=trusted
    ) as front:
        async with httpx.AsyncClient(base_url=front.url, timeout=10) as http:
            # One busy client and, at the same time, another well within its rate.
            clients = ["192.0.2.1"] * 150 + ["192.0.2.2"] * 50
            random.Random(13).shuffle(clients)
            responses = await asyncio.gather(
                *(http.get("/api/health", headers={"X-Forwarded-For": c}) for c in clients)
            )
        # The address each request was counted under (the access log's first field).
        log = (tmp_path / "nginx" / "access.log").read_text().splitlines()
        counted = {line.split()[0] for line in log}
    refused = {c for c, r in zip(clients, responses, strict=True) if r.status_code == 429}
    if others_refused:  # one bucket for all: every request counted under the proxy's address
        assert counted == {"127.0.0.1"}
    else:  # a bucket each: the quiet one never waits for the busy one
        assert {"192.0.2.1", "192.0.2.2"} <= counted
        assert "192.0.2.2" not in refused


@contextmanager
def _forwarded_for_recorder() -> Iterator[tuple[str, list[str | None]]]:
    """A stand-in backend answering every GET 200; its URL, and the X-Forwarded-For of each
    request it got, in order."""
    seen: list[str | None] = []

    class Recording(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("X-Forwarded-For"))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "ok"}')

        def log_message(self, *args: Any) -> None:
            pass

    backend = ThreadingHTTPServer(("127.0.0.1", 0), Recording)
    thread = threading.Thread(target=backend.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{backend.server_address[1]}", seen
    finally:
        backend.shutdown()
        backend.server_close()


@pytest.mark.parametrize(
    ("trusted", "forwarded", "client"),
    [
        ("127.0.0.1", "203.0.113.9, 192.0.2.1", "192.0.2.1"),
        # A client inside the trusted range names no one: one hop, the proxy's (review).
        ("127.0.0.0/8", "198.51.100.7, 127.0.0.5", "127.0.0.5"),
    ],
)
def test_the_backend_is_told_the_client_alone(
    stack: Stack, tmp_path: Path, trusted: str, forwarded: str, client: str
) -> None:
    """Not the chain a client may write itself: the backend logs the address nginx found."""
    with (
        _forwarded_for_recorder() as (backend_url, seen),
        nginx_in_front(
            stack, backend_url, free_port(), tmp_path / "nginx", trusted_proxy=trusted
        ) as front,
    ):
        seen.clear()  # nginx_in_front's own readiness checks
        forged = {"X-Forwarded-For": forwarded}
        assert httpx.get(f"{front.url}/api/health", headers=forged).status_code == 200
        assert httpx.get(f"{front.url}/api/health").status_code == 200
    # Through a proxy on loopback, the client it names; straight from loopback, loopback.
    assert seen == [client, "127.0.0.1"]


def test_a_proxy_on_either_loopback_is_trusted_by_default(stack: Stack, tmp_path: Path) -> None:
    """A proxy on the same machine may come over ::1 (nginx at [::1], or at `localhost` where
    that names both loopbacks); trusting 127.0.0.1 alone (review), every client through it was
    ::1, with one rate for them all."""
    if not ipv6_loopback():
        missing_component("this machine has no IPv6 loopback (::1): enable IPv6 on lo")
    default = trusted_proxy({})  # make run's, NGINX_TRUSTED_PROXY unset
    with (
        _forwarded_for_recorder() as (backend_url, seen),
        nginx_in_front(
            stack, backend_url, free_port(), tmp_path / "nginx", trusted_proxy=default, host="[::1]"
        ) as front,
    ):
        seen.clear()  # nginx_in_front's own readiness checks
        forwarded = {"X-Forwarded-For": "192.0.2.1"}
        assert httpx.get(f"{front.url}/api/health", headers=forwarded).status_code == 200
    assert seen == ["192.0.2.1"]


def _ipv6_clients() -> list[str]:
    """IPv6 addresses with their zero groups in every place nginx's short form may put `::`."""
    rng = random.Random(64)
    addresses = []
    for zeros in range(1 << 8):  # which of the eight groups are zero
        groups = [0 if zeros >> i & 1 else rng.randrange(1, 1 << 16) for i in range(8)]
        addresses.append(":".join(f"{group:x}" for group in groups))
    return addresses


def test_an_ipv6_client_is_rated_by_its_64(tmp_path: Path) -> None:
    """Review: each IPv6 address had a rate of its own, so a client with a /64 (an ordinary
    subscriber's) could take a new address for every request and never meet it. The template's
    map, in a real nginx: the key is the address's first four groups, for every place a run of
    zero groups can take."""
    template = (ROOT / "nginx" / "relaychat.conf.template").read_text()
    mapping = re.search(r"^map \$remote_addr \$relay_rate_key \{.*?^\}", template, re.M | re.S)
    assert mapping, "the rate key's map is gone from the template"
    port = free_port()
    (tmp_path / "nginx.conf").write_text(
        f"""pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{}}
http {{
    access_log off;
    {mapping[0]}
    server {{
        listen 127.0.0.1:{port};
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Forwarded-For;
        location / {{ return 200 "$relay_rate_key"; }}
    }}
}}
"""
    )
    nginx = system_commands.find("nginx")  # in /usr/sbin, off a user's PATH
    if nginx is None:
        missing_component("nginx is missing: apt-get install nginx (or `make setup`)")
    command = [nginx, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    command += ["-g", "daemon off;"]
    url = f"http://127.0.0.1:{port}"
    with (
        running("nginx-rate-key", command, clean_environment({}), f"{url}/"),
        httpx.Client(base_url=url) as http,
    ):

        def key(client: str) -> str:
            return http.get("/", headers={"X-Forwarded-For": client}).text

        wrong = {}
        for client in _ipv6_clients():
            address = ipaddress.IPv6Address(client)
            if address in ipaddress.IPv6Network("::/96"):
                continue  # nginx writes these as ::a.b.c.d (IPv4-compatible): keyed whole
            groups = address.exploded.split(":")[:4]
            expected = ":".join(f"{int(group, 16):x}" for group in groups)
            if (found := key(client)) != expected:
                wrong[client] = found
        assert not wrong
        # Another address of the same /64 counts with it; IPv4 as itself.
        assert key("2001:db8:1:2::5") == key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2"
        assert key("2001:db8:1:3::5") == "2001:db8:1:3"
        assert key("192.0.2.7") == "192.0.2.7"
        assert key("::ffff:192.0.2.7") != key("::ffff:192.0.2.8")


def test_nginx_listens_on_loopback_unless_told_otherwise(stack: Stack, tmp_path: Path) -> None:
    with nginx_in_front(stack, stack.backend_url, free_port(), tmp_path / "nginx") as front:
        port = front.url.rpartition(":")[2]
        conf = (tmp_path / "nginx" / "relaychat.conf").read_text()
    assert f"listen 127.0.0.1:{port};" in conf


@pytest.mark.parametrize(
    ("request_", "status", "words"),
    [
        (lambda c: c.get("/api/streams/" + "a" * 9000), 414, "URI is too long"),
        (lambda c: c.get("/api/health", headers={"cookie": "x=" + "a" * 9000}), 400, "too large"),
        (lambda c: c.get("/api/streams/%00abcdefgh"), 400, "could not be read"),
    ],
    ids=["uri-too-long", "cookie-too-large", "nul-in-path"],
)
async def test_what_nginx_itself_refuses_is_json_too(
    edge: Edge, request_: Any, status: int, words: str
) -> None:
    """Regression: only 413 and 429 had the backend's JSON shape; these were nginx's HTML."""
    async with httpx.AsyncClient(base_url=edge.url, timeout=10) as client:
        response = await request_(client)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert words in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"  # the server's headers too


def _raw_exchange(url: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request as bytes, written as they are (httpx would encode the path): the status,
    the headers (lower-cased names) and the body of the answer."""
    parsed = httpx.URL(url)
    with socket.create_connection((parsed.host, parsed.port or 80), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_", "status", "detail"),
    [
        (
            b"GET /api/\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            400,
            "the request could not be read (malformed, or its headers or cookies are too large)",
        ),
        (
            b"GET /api/streams/abc\xffdefgh HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            400,
            "the request could not be read (malformed, or its headers or cookies are too large)",
        ),
        (
            b"TRACE /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            405,
            "Method Not Allowed",
        ),
        (
            b"POST /api/execute HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
            b"Connection: close\r\n\r\n0\r\n\r\n",
            501,
            "the request uses something this server does not implement "
            "(a Transfer-Encoding other than chunked)",
        ),
        (
            b"GET /api/health HTTP/2.0\r\nHost: x\r\nConnection: close\r\n\r\n",
            505,
            "the HTTP version is not supported (use HTTP/1.1)",
        ),
        (
            b"POST /api/chat/sync?x=\xc3\xa9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            400,
            "the request could not be read (malformed, or its headers or cookies are too large)",
        ),
        (
            b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\nConnection: close\r\n\r\n",
            400,
            UNREADABLE,
        ),
        (
            b"FROB /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            400,
            UNREADABLE,
        ),
    ],
    ids=[
        "utf-8-in-path",
        "latin-1-in-path",
        "trace",
        "transfer-encoding",
        "http-2.0-line",
        "utf-8-in-a-chat-query",
        "control-character-in-a-header",
        "unknown-method",
    ],
)
def test_what_the_backend_s_parser_or_nginx_refuses_raw_is_json_too(
    edge: Edge, request_: bytes, status: int, detail: str
) -> None:
    """An outside-in probe: a raw non-ASCII byte in the path got uvicorn's plain-text 400
    through nginx, and TRACE nginx's HTML 405; a security probe: nginx's HTML 501 and 505, and
    uvicorn's plain text for a control character in a header, a method it does not know, and a
    raw byte in the target of the chat routes (nginx's check was not in their location)."""
    got, headers, body = _raw_exchange(edge.url, request_)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"detail": detail}


@pytest.mark.parametrize(
    "request_",
    [
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n",
        b"FROB /api/health HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/chat?x=\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["control-character-in-a-header", "unknown-method", "latin-1-in-a-chat-query"],
)
def test_the_backend_alone_refuses_what_it_cannot_parse_as_json(
    edge: Edge, request_: bytes
) -> None:
    """Behind a proxy of one's own, which passes these on as nginx does: uvicorn's parser said
    `Invalid HTTP request received.` in plain text, and the connection closes after it."""
    got, headers, body = _raw_exchange(edge.backend_url, request_)
    assert got == 400
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {"detail": UNREADABLE}


def test_nginx_s_own_redirects_are_relative(edge: Edge) -> None:
    """Behind a TLS proxy an absolute Location named http:// and nginx's own port."""
    got, headers, _ = _raw_exchange(
        edge.url, b"GET /api HTTP/1.1\r\nHost: chat.example\r\nConnection: close\r\n\r\n"
    )
    assert got == 301
    assert headers["location"] == "/api/"


class _HealthyThenGone(BaseHTTPRequestHandler):
    """A backend that is up for the readiness check and drops every other request unanswered,
    as one that died mid-request."""

    def do_GET(self) -> None:
        if self.path == "/api/health":
            body = b'{"status": "ok"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            self.close_connection = True  # no response at all: nginx answers 502

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_backend_that_cannot_answer_gives_a_json_502(stack: Stack, tmp_path: Path) -> None:
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _HealthyThenGone)
    thread = threading.Thread(target=backend.serve_forever, daemon=True)
    thread.start()
    try:
        backend_url = f"http://127.0.0.1:{backend.server_address[1]}"
        with nginx_in_front(stack, backend_url, free_port(), tmp_path / "nginx") as front:
            response = httpx.get(f"{front.url}/api/streams/abcdefgh", timeout=10)
    finally:
        backend.shutdown()
        backend.server_close()
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert "try again shortly" in response.json()["detail"]


def test_a_sync_answer_longer_than_the_api_s_time_limit_comes_through(
    stack: Stack, tmp_path: Path
) -> None:
    """nginx gives a backend 8 s to answer on /api/ (a paused one is then passed over), but the
    chat routes answer at an answer's end: /api/chat/sync here, ~9.6 s of 101 tokens."""
    slow = {"SIM_TOKEN_DELAY_MIN_MS": "95", "SIM_TOKEN_DELAY_MAX_MS": "95"}
    with (
        another_backend(stack, **slow) as backend_url,
        nginx_in_front(stack, backend_url, free_port(), tmp_path / "nginx") as front,
        httpx.Client(base_url=front.url, timeout=30) as http,
    ):
        assert http.post("/api/token").status_code == 200
        response = http.post("/api/chat/sync", json={"prompt": "code"})
    assert response.status_code == 200, response.text
    assert response.json() == {"response": answer_for("code")}


def test_an_execute_a_paused_backend_reads_after_nginx_gave_up_starts_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    """The only backend paused: nginx answers the execute 504 after 8 s, and the page asks for
    the snapshot (504 too: "not sent"). The backend, running again, read the execute all the
    same and started an answer nobody followed; now it refuses it (X-Request-Start)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**stack.backend_env, "BACKEND_PORT": str(port)}
    backend = Server("backend-paused", [sys.executable, "-m", "backend"], env, f"{url}/api/health")
    try:
        backend.start()
        with nginx_in_front(stack, url, free_port(), tmp_path / "nginx") as front:
            token = httpx.post(f"{url}/api/token", timeout=10)  # not through nginx
            channel = f"stream:pausedxx#{token.json()['user']}"
            # On a connection of its own: one the paused backend had kept alive is closed unread
            # when it runs again (its keep-alive timer fires first). nginx closes its idle ones
            # after 4 s.
            deadline = time.monotonic() + 15
            while any(
                remote == port and state == _ESTABLISHED for _, remote, state in _loopback_tcp(port)
            ):
                assert time.monotonic() < deadline, "nginx kept its connection to the backend"
                time.sleep(0.1)
            backend.signal(signal.SIGSTOP)
            response = httpx.post(
                f"{front.url}/api/execute",
                json={"text": "hello", "channel": channel},
                cookies=token.cookies,
                timeout=30,
            )
            assert response.status_code == 504
            backend.signal(signal.SIGCONT)
            deadline = time.monotonic() + 20
            while not (executes := _executes_by_status(url)):
                assert time.monotonic() < deadline, "the backend never read the execute"
                time.sleep(0.05)
            snapshot = httpx.get(f"{url}/api/streams/pausedxx", cookies=token.cookies, timeout=10)
    finally:
        backend.close()
    assert executes == {"5xx": 1.0}  # 503: read too late
    assert snapshot.status_code == 404


def _executes_by_status(backend_url: str) -> dict[str, float]:
    """The backend's count of executes by status class, from its metrics."""
    metrics = httpx.get(f"{backend_url}/metrics", timeout=10).text
    prefix = 'http_requests_total{handler="/api/execute",method="POST",status="'
    return {
        line.removeprefix(prefix).partition('"')[0]: float(line.rpartition(" ")[2])
        for line in metrics.splitlines()
        if line.startswith(prefix)
    }


_ESTABLISHED, _TIME_WAIT = "01", "06"


def _loopback_tcp(port: int) -> list[tuple[int, int, str]]:
    """(local port, remote port, state) of the IPv4 TCP sockets with `port` at either end."""
    sockets = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = (int(address.rpartition(":")[2], 16) for address in fields[1:3])
        if port in (local, remote):
            sockets.append((local, remote, fields[3]))
    return sockets


def test_nginx_closes_idle_backend_connections_before_the_backend_does(
    stack: Stack, tmp_path: Path
) -> None:
    """nginx keeps connections to the backend open between requests (upstream `keepalive`).
    uvicorn closes a connection idle for 5 s; were nginx to keep one longer, a request it sent
    just as the backend closed it would fail, and for a POST (an execute) nginx does not try
    again: a 502. So nginx closes them first, which leaves its own side in TIME_WAIT. A backend
    of its own: every connection to it is then nginx's."""
    with (
        another_backend(stack) as backend_url,
        nginx_in_front(stack, backend_url, free_port(), tmp_path / "nginx") as front,
    ):
        backend_port = int(backend_url.rpartition(":")[2])
        assert httpx.post(f"{front.url}/api/token", timeout=10).status_code == 200
        pooled = {
            local
            for local, remote, state in _loopback_tcp(backend_port)
            if remote == backend_port and state == _ESTABLISHED
        }
        assert pooled, "nginx kept no connection to the backend open"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # until both sides have closed each of them
            sockets = _loopback_tcp(backend_port)
            if all(
                state == _TIME_WAIT for local, remote, state in sockets if pooled & {local, remote}
            ):
                break
            time.sleep(0.05)
    closed_by_nginx = {
        local
        for local, remote, state in sockets
        if local in pooled and remote == backend_port and state == _TIME_WAIT
    }
    closed_by_backend = {
        remote
        for local, remote, state in sockets
        if local == backend_port and remote in pooled and state == _TIME_WAIT
    }
    assert (closed_by_nginx, closed_by_backend) == (pooled, set())
