"""The real servers the integration and browser tests run against: Centrifugo with the
project's config, the backend, and nginx with the project's template, each on free ports."""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from backend.api.limits import max_body_bytes
from tests.processes import (
    ROOT,
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


@contextmanager
def running_stack(workdir: Path) -> Iterator[Stack]:
    """Centrifugo (as `make run` starts it) and the backend on free ports, until the block ends."""
    api_key, token_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    centrifugo_port, backend_port = free_port(), free_port()
    nginx_ports = (free_port(), free_port())
    shared = {
        "CENTRIFUGO_HTTP_API_KEY": api_key,
        "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY": token_secret,
        "CENTRIFUGO_HTTP_SERVER_PORT": str(centrifugo_port),
    }
    origins = " ".join([ORIGIN, *(f"http://127.0.0.1:{port}" for port in nginx_ports)])
    centrifugo_env = clean_environment({**shared, "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": origins})
    backend_env = clean_environment(
        {
            **shared,
            "ENVIRONMENT": "production",
            "SESSION_SECRET": secrets.token_urlsafe(32),
            "BACKEND_PORT": str(backend_port),
            # Small but non-zero: answers arrive as many publications, as in real use.
            "SIM_TOKEN_DELAY_MIN_MS": "1",
            "SIM_TOKEN_DELAY_MAX_MS": "3",
            "COALESCE_WINDOW_MS": "5",
            "PYTHONUNBUFFERED": "1",
        }
    )
    centrifugo_url = f"http://127.0.0.1:{centrifugo_port}"
    backend_url = f"http://127.0.0.1:{backend_port}"
    centrifugo_cmd = centrifugo_command(workdir)
    backend_cmd = [sys.executable, "-m", "backend"]
    with (
        running("centrifugo", centrifugo_cmd, centrifugo_env, f"{centrifugo_url}/health"),
        running("backend", backend_cmd, backend_env, f"{backend_url}/api/health"),
    ):
        yield Stack(backend_url, centrifugo_url, api_key, token_secret, backend_env, nginx_ports)


@contextmanager
def another_backend(stack: Stack, **settings: str) -> Iterator[str]:
    """One more backend on the same Centrifugo, with some settings changed; yields its URL."""
    port = free_port()
    env = {**stack.backend_env, **settings, "BACKEND_PORT": str(port)}
    url = f"http://127.0.0.1:{port}"
    with running("backend-extra", [sys.executable, "-m", "backend"], env, f"{url}/api/health"):
        yield url


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
    stack: Stack, backend_url: str, port: int, out: Path, static_root: Path = FRONTEND_DIST
) -> Iterator[Edge]:
    """nginx as `make run` starts it; fails at once, with nginx's own words, if it does not
    serve the page (a page it cannot read is otherwise a bare 404 in every browser test)."""
    if shutil.which("nginx") is None:
        missing_component("nginx is missing: apt-get install nginx (or `make setup`)")
    if not (static_root / "index.html").exists():
        missing_component(f"the chat page is not built in {static_root}: `make frontend`")
    conf = _render_nginx(out, port, backend_url, stack.centrifugo_url, static_root)
    url = f"http://127.0.0.1:{port}"
    command = ["nginx", "-p", str(out), "-c", str(conf), "-g", "daemon off;"]
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
    out: Path, port: int, backend_url: str, centrifugo_url: str, static_root: Path
) -> Path:
    """The nginx config `make run` uses, from the same script, for these ports."""
    command = [
        sys.executable,
        str(ROOT / "scripts" / "render_nginx.py"),
        str(out),
        f"--port={port}",
        f"--backend={backend_url.removeprefix('http://')}",
        f"--centrifugo={centrifugo_url.removeprefix('http://')}",
        f"--static-root={static_root}",
        # The backends here run with the default limits.
        f"--max-body={max_body_bytes(8000, 32000)}",
    ]
    return Path(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip())
