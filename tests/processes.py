"""Starting real servers for tests: free ports, readiness, and always stopping them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def missing_component(message: str) -> NoReturn:
    """In CI a missing component fails the run; elsewhere the test is skipped with the fix."""
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without any relaychat or Centrifugo settings, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CENTRIFUGO_", "RELAY_", "SIM_", "BACKEND_"))
    }
    env.update(extra)
    return env


class Server:
    """A server process the test controls: started and waited for, signalled, restarted, and
    always stopped. Its output goes to a log that a failure to start shows."""

    def __init__(
        self, name: str, command: list[str], env: Mapping[str, str], ready_url: str
    ) -> None:
        self.name, self.command, self.env, self.ready_url = name, command, dict(env), ready_url
        self._workdir = tempfile.TemporaryDirectory(prefix=f"relaychat-{name}-")
        self.log_path = Path(self._workdir.name) / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                env=self.env,
                cwd=self._workdir.name,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _wait_ready(self.name, self.process, self.ready_url, self.log_path, timeout)

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within 10 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot stop
        self.stop()
        self._workdir.cleanup()


@contextmanager
def running(
    name: str, command: list[str], env: Mapping[str, str], ready_url: str, timeout: float = 30
) -> Iterator[Path]:
    """Run `command` until the block ends; wait until `ready_url` answers 200. Yields its log."""
    server = Server(name, command, env, ready_url)
    try:
        server.start(timeout)
        yield server.log_path
    finally:
        server.close()


def _wait_ready(
    name: str, process: subprocess.Popen[bytes], url: str, log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready at {url} after {timeout} s:\n{log_path.read_text()}")


def centrifugo_binary() -> str:
    """The binary `scripts/centrifugo.sh` finds or gets (it honours CENTRIFUGO_BIN)."""
    result = subprocess.run(
        [str(ROOT / "scripts" / "centrifugo.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        missing_component(
            "Centrifugo is missing and could not be got; run `make setup` "
            f"(scripts/centrifugo.sh) or set CENTRIFUGO_BIN.\n{result.stderr}"
        )
    return result.stdout.strip()


def centrifugo_command(out: Path) -> list[str]:
    """Centrifugo (v6, or v5 with the translated config in `out`) as `make run` starts it."""
    return [
        sys.executable,
        str(ROOT / "scripts" / "centrifugo_launch.py"),
        centrifugo_binary(),
        str(ROOT / "centrifugo" / "config.json"),
        f"--out={out}",
    ]
