"""A small relaychat cluster on free ports, as `make run-cluster` starts one: Redis, two
Centrifugo nodes on Redis's engine, two backend processes sharing their streams registry on
Redis, and (for the page) nginx balancing over both of each."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import redis

from scripts import system_commands
from tests.processes import Server, clean_environment, free_port, missing_component
from tests.stack import Stack, centrifugo_server, stack_for

REDIS_SERVER = "redis-server"


@dataclass
class Cluster:
    redis_url: str
    stacks: tuple[Stack, Stack]  # node/backend 1 and 2: same secrets, their own ports
    centrifugo: tuple[Server, Server]
    backends: tuple[Server, Server]
    redis_pid: int


class RedisServer:
    """Debian's redis-server, in memory only, on 127.0.0.1."""

    def __init__(self, workdir: Path) -> None:
        if system_commands.find(REDIS_SERVER) is None:
            missing_component(
                "redis-server is missing: apt-get install redis-server (or `make test-tools`)"
            )
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            REDIS_SERVER,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._workdir),
        ]  # fmt: skip
        with (self._workdir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        with redis.Redis.from_url(self.url) as client:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.process.poll() is not None:
                        raise
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)


def centrifugo_on_redis(stack: Stack, workdir: Path, redis_url: str) -> Server:
    server = centrifugo_server(stack, workdir)
    server.env.update(
        {"CENTRIFUGO_ENGINE_TYPE": "redis", "CENTRIFUGO_ENGINE_REDIS_ADDRESS": redis_url}
    )
    return server


def backend_on_redis(stack: Stack) -> Server:
    command = [sys.executable, "-m", "backend"]
    return Server("backend", command, stack.backend_env, f"{stack.backend_url}/api/health")


@contextmanager
def running_cluster(workdir: Path, **settings: str) -> Iterator[Cluster]:
    """Redis, then two Centrifugo nodes, then two backends; all stopped when the block ends."""
    redis_server = RedisServer(workdir)
    redis_server.start()
    try:
        first = stack_for(
            free_port(),
            free_port(),
            (free_port(), free_port()),
            REDIS_URL=redis_server.url,
            **settings,
        )
        second_port, second_backend = free_port(), free_port()
        # Each backend publishes through its own node first, as `make run-cluster` sets it up.
        first_port = int(first.centrifugo_url.rpartition(":")[2])
        first.backend_env["RELAY_CENTRIFUGO_API_URL"] = (
            f"{first.centrifugo_url}/api http://127.0.0.1:{second_port}/api"
        )
        second = replace(
            first,
            backend_url=f"http://127.0.0.1:{second_backend}",
            centrifugo_url=f"http://127.0.0.1:{second_port}",
            backend_env=clean_environment(
                {
                    **first.backend_env,
                    "BACKEND_PORT": str(second_backend),
                    "CENTRIFUGO_HTTP_SERVER_PORT": str(second_port),
                    "RELAY_CENTRIFUGO_API_URL": (
                        f"http://127.0.0.1:{second_port}/api http://127.0.0.1:{first_port}/api"
                    ),
                }
            ),
        )
        nodes = (
            centrifugo_on_redis(first, workdir / "c1", redis_server.url),
            centrifugo_on_redis(second, workdir / "c2", redis_server.url),
        )
        backends = (backend_on_redis(first), backend_on_redis(second))
        try:
            for server in (*nodes, *backends):
                server.start()
            assert redis_server.process is not None
            pid = redis_server.process.pid
            yield Cluster(redis_server.url, (first, second), nodes, backends, pid)
        finally:
            for server in reversed([*nodes, *backends]):
                server.close()
    finally:
        redis_server.stop()
