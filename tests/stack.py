"""The real servers the integration and browser tests run against: Centrifugo with the
project's config, the backend, and nginx with the project's template, each on free ports."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from backend.api.limits import max_body_bytes
from scripts import system_commands
from tests.processes import (
    ROOT,
    Server,
    centrifugo_command,
    clean_environment,
    free_port,
    missing_component,
    running,
)

ORIGIN = "http://localhost:9000"
FRONTEND_DIST = ROOT / "frontend" / "dist"
# Slow enough that a person, or a test polling the page, sees the answer grow.
HUMAN_SPEED = {"SIM_TOKEN_DELAY_MIN_MS": "15", "SIM_TOKEN_DELAY_MAX_MS": "25"}


@dataclass(frozen=True)
class Stack:
    backend_url: str
    centrifugo_url: str
    api_key: str
    token_secret: str
    backend_env: dict[str, str]
    nginx_ports: tuple[int, int]  # reserved for the two nginx edges; their origins may connect

    @property
    def websocket_url(self) -> str:
        return self.centrifugo_url.replace("http://", "ws://") + "/connection/websocket"


def stack_for(
    centrifugo_port: int, backend_port: int, nginx_ports: tuple[int, int], **settings: str
) -> Stack:
    """Secrets and settings for a Centrifugo and a backend on these ports (none started)."""
    api_key, token_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    backend_env = clean_environment(
        {
            "CENTRIFUGO_HTTP_API_KEY": api_key,
            "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": token_secret,
            "CENTRIFUGO_HTTP_SERVER_PORT": str(centrifugo_port),
            "ENVIRONMENT": "production",
            "SESSION_SECRET": secrets.token_urlsafe(32),
            "BACKEND_PORT": str(backend_port),
            # Small but non-zero: answers arrive as many publications, as in real use.
            "SIM_TOKEN_DELAY_MIN_MS": "1",
            "SIM_TOKEN_DELAY_MAX_MS": "3",
            "COALESCE_WINDOW_MS": "5",
            # The tests run dozens of answers at once as one user (one connection).
            "MAX_STREAMS_PER_USER": "100",
            # ... all from one address, loopback (tests/integration/test_answer_caps.py runs
            # with a small cap).
            "MAX_STREAMS_PER_ADDRESS": "1000",
            # ... each subscribed before its execute: fresh channels beyond a page's budget
            # (tests/integration/test_subscribe_limit.py runs with the defaults).
            "SUBSCRIBE_BURST_PER_USER": "1000",
            "SUBSCRIBE_BURST_PER_ADDRESS": "1000",
            "PYTHONUNBUFFERED": "1",
            # A test's servers stop at its end, answers left running end at once (the tests of
            # the shutdown's wait for them set it).
            "SHUTDOWN_DRAIN_SECONDS": "0",
            **settings,
        }
    )
    return Stack(
        f"http://127.0.0.1:{backend_port}",
        f"http://127.0.0.1:{centrifugo_port}",
        api_key,
        token_secret,
        backend_env,
        nginx_ports,
    )


def centrifugo_server(stack: Stack, workdir: Path) -> Server:
    """Centrifugo as `make run` starts it, for `stack` (not started)."""
    origins = " ".join([ORIGIN, *(f"http://127.0.0.1:{port}" for port in stack.nginx_ports)])
    shared = ("CENTRIFUGO_HTTP_API_KEY", "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY")
    env = {name: stack.backend_env[name] for name in shared}
    env["CENTRIFUGO_HTTP_SERVER_PORT"] = stack.centrifugo_url.rpartition(":")[2]
    env["CENTRIFUGO_CLIENT_ALLOWED_ORIGINS"] = origins
    # Its own backend decides each subscribe (backend/centrifugo/subscriptions.py).
    env["CENTRIFUGO_CHANNEL_PROXY_SUBSCRIBE_ENDPOINT"] = f"{stack.backend_url}/centrifugo/subscribe"
    command = centrifugo_command(workdir)
    return Server("centrifugo", command, clean_environment(env), f"{stack.centrifugo_url}/health")


def backend_server(stack: Stack) -> Server:
    command = [sys.executable, "-m", "backend"]
    return Server("backend", command, stack.backend_env, f"{stack.backend_url}/api/health")


@contextmanager
def running_stack(workdir: Path, **settings: str) -> Iterator[Stack]:
    """Centrifugo (as `make run` starts it) and the backend on free ports, until the block ends;
    `settings` over the tests' own (`stack_for`)."""
    stack = stack_for(free_port(), free_port(), (free_port(), free_port()), **settings)
    servers = [centrifugo_server(stack, workdir), backend_server(stack)]
    try:
        for server in servers:
            server.start()
        yield stack
    finally:
        for server in reversed(servers):
            server.close()


@contextmanager
def another_backend(stack: Stack, **settings: str) -> Iterator[str]:
    """One more backend on the same Centrifugo, with some settings changed; yields its URL."""
    with another_backend_server(stack, **settings) as server:
        yield server.ready_url.removesuffix("/api/health")


@contextmanager
def another_backend_server(stack: Stack, **settings: str) -> Iterator[Server]:
    """`another_backend`, yielding its server (to signal it); its URL is `ready_url`'s start."""
    port = free_port()
    env = {**stack.backend_env, **settings, "BACKEND_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    server = Server("backend-extra", [sys.executable, "-m", "backend"], env, f"{url}/api/health")
    try:
        server.start()
        yield server
    finally:
        server.close()


@dataclass(frozen=True)
class Edge:
    """nginx with the project's template in front of a backend and the session's Centrifugo."""

    url: str
    backend_url: str
    stack: Stack

    @property
    def websocket_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/connection/websocket"


@contextmanager
def nginx_in_front(
    stack: Stack,
    backend_url: str,
    port: int,
    out: Path,
    static_root: Path = FRONTEND_DIST,
    trusted_proxy: str = "127.0.0.1",
    host: str = "127.0.0.1",
) -> Iterator[Edge]:
    """nginx as `make run` starts it; fails at once, with nginx's own words, if it does not
    serve the page (a page it cannot read is otherwise a bare 404 in every browser test)."""
    nginx = system_commands.find("nginx")  # in /usr/sbin, off a user's PATH
    if nginx is None:
        missing_component("nginx is missing: apt-get install nginx (or `make setup`)")
    if not (static_root / "index.html").exists():
        missing_component(f"the chat page is not built in {static_root}: `make frontend`")
    conf = _render_nginx(
        out, port, backend_url, stack.centrifugo_url, static_root, trusted_proxy, host
    )
    url = f"http://{host if host.startswith('[') else '127.0.0.1'}:{port}"  # [::1]: IPv6
    command = [nginx, "-p", str(out), "-c", str(conf), "-g", "daemon off;"]
    with running("nginx", command, clean_environment({}), f"{url}/api/health"):
        page = httpx.get(f"{url}/", timeout=10)
        if page.status_code != 200:
            log = (out / "error.log").read_text(errors="replace").splitlines()[-10:]
            pytest.fail(
                f"nginx answers {page.status_code} for / (page from {static_root}); "
                "the end of its error log:\n" + "\n".join(log),
                pytrace=False,
            )
        yield Edge(url, backend_url, stack)


def _render_nginx(
    out: Path,
    port: int,
    backend_url: str,
    centrifugo_url: str,
    static_root: Path,
    trusted_proxy: str = "127.0.0.1",
    host: str = "127.0.0.1",
) -> Path:
    """The nginx config `make run` uses, from the same script, for these ports."""
    command = [
        sys.executable,
        "-m",
        "scripts.render_nginx",
        str(out),
        f"--port={port}",
        f"--backend={backend_url.removeprefix('http://')}",
        f"--centrifugo={centrifugo_url.removeprefix('http://')}",
        f"--static-root={static_root}",
        # The backends here run with the default limits.
        f"--max-body={max_body_bytes(8000, 32000, 20)}",
        f"--trusted-proxy={trusted_proxy}",
        f"--host={host}",
    ]
    rendered = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return Path(rendered.stdout.strip())
