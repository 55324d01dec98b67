"""`make run`: Centrifugo, the backend and nginx in the foreground, until Ctrl-C or SIGTERM.
`make run-cluster` (`--cluster`): Redis, two Centrifugo nodes on Redis's engine, two backends
sharing their streams on Redis, and nginx balancing over both of each.

    python -m scripts.run [--cluster] [--env-file .env] [--state-dir .cache/run]

Settings come from the environment first, then the env file (the environment wins, as in the
backend's own settings and in docker compose). Every port is checked before anything starts;
"chat at ..." is printed only once all three answer; a failed start stops the others and says
which one failed. SIGINT, SIGTERM and SIGHUP stop all three, the backend first, so that the
streams it ends still get their `done` published and carried to the browsers. A service that
exits while running (a crash, an OOM kill) is reported and restarted.
"""

from __future__ import annotations

import argparse
import ctypes
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NoReturn

from dotenv import dotenv_values

from backend.api.limits import max_body_bytes
from backend.config import Settings
from scripts.render_nginx import render

ROOT = Path(__file__).resolve().parent.parent
READY_SECONDS = 30.0
STOP_SECONDS = 10.0
RESTARTS_PER_MINUTE = 5
SAME_SIGNAL_SECONDS = 0.1


class Stop(Exception):
    """A signal asked everything to stop."""


class StartFailed(Exception):
    """A service could not start; the message says which and why."""


@dataclass(frozen=True)
class Service:
    name: str
    command: list[str]
    ready_url: str  # http://... answering 200, or redis://host:port answering PING
    port: int
    host: str
    port_setting: str
    env: Mapping[str, str] = field(default_factory=dict)  # over the shared environment


def settings(env_file: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The env file's values overridden by the environment; allowed origins default to the
    page's own origin, derived from NGINX_PORT."""
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    merged = {**values, **environ}
    port = merged.setdefault("NGINX_PORT", "9000")
    merged.setdefault(
        "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS", f"http://localhost:{port} http://127.0.0.1:{port}"
    )
    return merged


def local_address(host: str) -> str:
    """Where this machine reaches a server listening on `host`: one listening on every
    interface, on loopback (an IPv6 address in brackets, for a URL)."""
    if host in ("", "0.0.0.0", "::", "*"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def services(env: Mapping[str, str], state: Path, centrifugo: str) -> list[Service]:
    """The three processes, in the order they start."""
    centrifugo_port = int(env.get("CENTRIFUGO_HTTP_SERVER_PORT", "8000"))
    backend_host = env.get("BACKEND_HOST", "127.0.0.1")
    backend_port = int(env.get("BACKEND_PORT", "5000"))
    return [
        centrifugo_service(
            "centrifugo",
            centrifugo,
            state,
            centrifugo_port,
            env.get("CENTRIFUGO_HTTP_SERVER_ADDRESS", "127.0.0.1"),
        ),
        backend_service("backend", backend_port, backend_host),
        nginx_service(
            env, state, [f"{local_address(backend_host)}:{backend_port}"], [centrifugo_port]
        ),
    ]


def cluster_services(env: Mapping[str, str], state: Path, centrifugo: str) -> list[Service]:
    """Redis, two Centrifugo nodes on it, two backends sharing their streams on it, and nginx
    balancing over both of each. Ports: CLUSTER_REDIS_PORT (6379), and each single-run port
    with the next one for the second of a kind."""
    redis_port = int(env.get("CLUSTER_REDIS_PORT", "6379"))
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    first_node = int(env.get("CENTRIFUGO_HTTP_SERVER_PORT", "8000"))
    first_backend = int(env.get("BACKEND_PORT", "5000"))
    nodes = [first_node, first_node + 1]
    backends = [first_backend, first_backend + 1]
    redis = Service(
        "redis",
        ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(state)],
        f"redis://127.0.0.1:{redis_port}",
        redis_port,
        "127.0.0.1",
        "CLUSTER_REDIS_PORT",
    )  # fmt: skip
    engine = {"CENTRIFUGO_ENGINE_TYPE": "redis", "CENTRIFUGO_ENGINE_REDIS_ADDRESS": redis_url}
    centrifugos = [
        centrifugo_service(f"centrifugo-{n}", centrifugo, state, port, "127.0.0.1", engine)
        for n, port in enumerate(nodes, 1)
    ]
    backend_services = [
        backend_service(
            f"backend-{n}",
            port,
            "127.0.0.1",
            {"CENTRIFUGO_HTTP_SERVER_PORT": str(node), "REDIS_URL": redis_url},
        )
        for n, (port, node) in enumerate(zip(backends, nodes, strict=True), 1)
    ]
    nginx = nginx_service(env, state, [f"127.0.0.1:{port}" for port in backends], nodes)
    return [redis, *centrifugos, *backend_services, nginx]


def centrifugo_service(
    name: str,
    binary: str,
    state: Path,
    port: int,
    host: str,
    env: Mapping[str, str] | None = None,
) -> Service:
    launch = [sys.executable, str(ROOT / "scripts" / "centrifugo_launch.py"), binary]
    config = [str(ROOT / "centrifugo" / "config.json"), f"--out={state / name}"]
    return Service(
        name,
        [*launch, *config],
        f"http://{local_address(host)}:{port}/health",
        port,
        host,
        "CENTRIFUGO_HTTP_SERVER_PORT",
        {**(env or {}), "CENTRIFUGO_HTTP_SERVER_PORT": str(port)},
    )


def backend_service(
    name: str, port: int, host: str, env: Mapping[str, str] | None = None
) -> Service:
    return Service(
        name,
        [sys.executable, "-m", "backend"],
        f"http://{local_address(host)}:{port}/api/health",
        port,
        host,
        "BACKEND_PORT",
        {**(env or {}), "BACKEND_PORT": str(port)},
    )


def nginx_service(
    env: Mapping[str, str], state: Path, backends: list[str], nodes: list[int]
) -> Service:
    """nginx on NGINX_HOST:NGINX_PORT in front of `backends` and the Centrifugo `nodes`."""
    port = int(env["NGINX_PORT"])
    host = env.get("NGINX_HOST", "127.0.0.1")
    conf = render(
        state / "nginx",
        port,
        ",".join(backends),
        ",".join(f"127.0.0.1:{node}" for node in nodes),
        ROOT / "frontend" / "dist",
        body_limit(env),
        host,
    )
    return Service(
        "nginx",
        ["nginx", "-p", str(state / "nginx"), "-c", str(conf), "-g", "daemon off;"],
        f"http://{local_address(host)}:{port}/",
        port,
        host,
        "NGINX_PORT",
    )


def body_limit(env: Mapping[str, str]) -> int:
    """The backend's body limit, for nginx: from the same settings, with the same defaults."""
    fields = Settings.model_fields

    def setting(name: str, field: str) -> int:
        return int(env.get(name) or fields[field].default)

    return max_body_bytes(
        setting("MAX_TEXT_CHARS", "max_text_chars"),
        setting("MAX_HISTORY_CHARS", "max_history_chars"),
    )


def check_distinct_ports(plan: list[Service]) -> None:
    """Two servers given one port (under `--cluster` the second Centrifugo and backend take the
    port after their first's, which the other setting may name): an error before any starts."""
    taken: dict[int, Service] = {}
    for service in plan:
        first = taken.setdefault(service.port, service)
        if first is not service:
            raise StartFailed(
                f"port {service.port} is given to both {first.name} ({first.port_setting}) and "
                f"{service.name} ({service.port_setting}): set one of them to another port"
                + (
                    " (the second Centrifugo and backend take the port after their first's)"
                    if "-2" in service.name or "-2" in first.name
                    else ""
                )
            )


def check_port(service: Service) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((service.host, service.port))
        except OSError as error:
            raise StartFailed(
                f"port {service.port} ({service.name}, {service.port_setting}) is not free: "
                f"{error.strerror}; {port_holder(service.port)}. Stop it, or set "
                f"{service.port_setting} to another port."
            ) from error


def port_holder(port: int) -> str:
    """Which process listens on `port`, as far as `ss` can tell."""
    try:
        listing = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "`ss -ltnp` would say which process holds it"
    holders = sorted(set(re.findall(r'\("([^"]+)",pid=(\d+)', listing)))
    if not holders:
        return "held by a process this user cannot see"
    return "held by " + ", ".join(f"{name} (pid {pid})" for name, pid in holders)


def end_group(leader: int, timeout: float = 5.0) -> bool:
    """Kill what is left of an exited service's process group (a service runs in a session of
    its own, its children with it): nginx's workers outlive a master killed with SIGKILL and
    keep its port, so that a new nginx cannot bind it, and they would answer its readiness
    check. Returns once none is left running (a killed process not yet reaped by its new
    parent holds no port), or after `timeout` (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(leader, signal.SIGKILL)
        except ProcessLookupError:
            return True
        if not _running_in_group(leader):
            return True
        time.sleep(0.05)  # killed, not yet gone
    say(f"processes of group {leader} still run after SIGKILL; restarting anyway")
    return False


def _running_in_group(group: int) -> bool:
    """Whether a process of `group` runs (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def _die_with_parent() -> None:
    """In the child: if this supervisor dies (even by SIGKILL), the child gets SIGTERM."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Supervisor:
    def __init__(self, env: Mapping[str, str], state: Path) -> None:
        self.env = dict(env)
        self.state = state
        self.running: list[tuple[Service, subprocess.Popen[bytes]]] = []

    def start(self, service: Service) -> None:
        # A session of its own: Ctrl-C in the terminal reaches the service only through stop(),
        # in the order that keeps streams' endings deliverable.
        process = subprocess.Popen(
            service.command,
            env={**self.env, **service.env},
            # Not the checkout: the backend would read the checkout's .env for whatever the
            # environment leaves out, even when another env file was asked for.
            cwd=self.state,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.running.append((service, process))
        deadline = time.monotonic() + READY_SECONDS
        while not _answers(service.ready_url):
            if process.poll() is not None:
                raise StartFailed(
                    f"{service.name} exited with code {process.returncode} before it answered "
                    f"at {service.ready_url} (its output is above)"
                )
            if time.monotonic() > deadline:
                raise StartFailed(
                    f"{service.name} did not answer at {service.ready_url} within "
                    f"{READY_SECONDS:.0f} s (its output is above)"
                )
            time.sleep(0.1)

    def keep_running(self) -> NoReturn:
        """Restarts whichever service exits, until a signal stops everything. A service that
        keeps failing (RESTARTS_PER_MINUTE) raises StartFailed."""
        restarts: list[float] = []
        while True:
            service, code = self.wait_any()
            now = time.monotonic()
            restarts = [at for at in restarts if now - at < 60] + [now]
            if len(restarts) > RESTARTS_PER_MINUTE:
                raise StartFailed(f"{service.name} keeps exiting (code {code}); giving up")
            say(f"{service.name} exited with code {code}; restarting it")
            exited = [p for s, p in self.running if s is service]
            self.running = [(s, p) for s, p in self.running if s is not service]
            for process in exited:
                end_group(process.pid)
            self.start(service)
            say(f"{service.name} restarted")

    def wait_any(self) -> tuple[Service, int]:
        """Blocks until one service exits (a signal interrupts it with Stop)."""
        while True:
            exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
            for service, process in self.running:
                if process.poll() is not None:
                    return service, process.returncode
            if exited is not None:
                # Not a service: an orphan this process adopted (it runs as a container's PID
                # 1, or a subreaper), e.g. a worker of a crashed nginx master. Reaped.
                os.waitpid(exited.si_pid, 0)

    def stop(self) -> None:
        """Stops the backend first, then nginx, then Centrifugo (then Redis); a second signal
        hurries."""
        order = {"backend": 0, "nginx": 1, "centrifugo": 2, "redis": 3}

        def kind(item: tuple[Service, subprocess.Popen[bytes]]) -> int:
            return order[item[0].name.partition("-")[0]]

        for service, process in sorted(self.running, key=kind):
            try:
                if process.poll() is None:
                    process.terminate()
                    process.wait(STOP_SECONDS + self._grace(service))
            except (subprocess.TimeoutExpired, Stop):
                say(f"{service.name} did not stop in time; killing it")
                process.kill()
                process.wait()
        self.running.clear()

    def _grace(self, service: Service) -> float:
        if not service.name.startswith("backend"):
            return 0.0
        return float(self.env.get("SHUTDOWN_GRACE_SECONDS", "5") or 0)


def _answers(url: str) -> bool:
    if url.startswith("redis://"):
        return _pongs(url)
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _pongs(url: str) -> bool:
    """Whether the Redis at `url` (redis://host:port) answers PING."""
    host, _, port = url.removeprefix("redis://").partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def say(message: str) -> None:
    print(f"run: {message}", file=sys.stderr, flush=True)


class StopSignals:
    """The handler of SIGINT, SIGTERM and SIGHUP: raises Stop. A signal within
    SAME_SIGNAL_SECONDS of the last one is the same request, not a second one that hurries the
    stop: make, when its process group gets SIGTERM, passes one more on to the supervisor at
    once, which got its own already (raised in the middle of handling the first, it went
    unhandled: a traceback, and the servers stopped without their grace). A person's second
    Ctrl-C comes later than that."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = -math.inf

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        now = self._clock()
        last, self._last = self._last, now  # first: a signal handled in between sees it
        if now - last < SAME_SIGNAL_SECONDS:
            return
        raise Stop(signal.Signals(signum).name)


def centrifugo_binary() -> str:
    found = subprocess.run([str(ROOT / "scripts" / "centrifugo.sh")], stdout=subprocess.PIPE)
    if found.returncode != 0:
        raise StartFailed("Centrifugo could not be found or built (see above)")
    return found.stdout.decode().strip()


def run(env: Mapping[str, str], state: Path, *, cluster: bool = False) -> int:
    handler = StopSignals()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)
    state.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor(env, state)
    try:
        plan = (cluster_services if cluster else services)(env, state, centrifugo_binary())
        check_distinct_ports(plan)
        for service in plan:
            check_port(service)
        for service in plan:
            supervisor.start(service)
        say(f"chat at http://localhost:{env['NGINX_PORT']} (Ctrl-C stops everything)")
        supervisor.keep_running()
    except StartFailed as error:
        say(str(error))
        return 1
    except Stop as stop:
        say(f"{stop} received; stopping the backend, then nginx, then Centrifugo")
        return 0
    finally:
        supervisor.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", action="store_true", help="Redis, 2 Centrifugo, 2 backends")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".cache" / "run")
    args = parser.parse_args()
    env = settings(args.env_file, os.environ)
    sys.exit(run(env, args.state_dir.resolve(), cluster=args.cluster))


if __name__ == "__main__":
    main()
