"""`make run` as a user runs it: it says "chat at" only when the chat works, every signal stops all
three servers, a taken port, a bad setting or a failed start is a readable error, the environment
beats .env, and a second run on the same state dir is refused without disturbing the first."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.core.endings import SHUTDOWN
from backend.llm.simulated import answer_for
from scripts import system_commands
from scripts.run import SAME_SIGNAL_SECONDS
from tests.clients import ChatSession, answer_of
from tests.fake_openai import ANSWER, fake_openai_server
from tests.processes import (
    ROOT,
    centrifugo_binary,
    clean_environment,
    free_port,
    ipv6_loopback,
    missing_component,
)

START_SECONDS = 60.0


@dataclass
class Run:
    """`make run` (or `python -m scripts.run`) in a process group of its own, output collected."""

    process: subprocess.Popen[str]
    ports: dict[str, int]
    lines: list[str] = field(default_factory=list)
    ended: bool = False
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, fragment: str, timeout: float = START_SECONDS) -> bool:
        """True once a line containing `fragment` is printed; False if the output ends first."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                self.ended = True
                return False
            self.lines.append(line)
            if fragment in line:
                return True
        raise AssertionError(f"no {fragment!r} within {timeout} s:\n{self.output}")

    def finish(self, timeout: float = 60) -> int:
        code = self.process.wait(timeout)
        self.wait_for_end()
        return code

    def wait_for_end(self) -> None:
        while not self.ended:
            line = self._queue.get(timeout=10)
            if line is None:
                self.ended = True
            else:
                self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['NGINX_PORT']}"


def _overlaps(port: int, ports: Mapping[str, int], name: str) -> bool:
    """Whether `port` or the one after it is another name's port or the one after that."""
    return any(
        {port, port + 1} & {other, other + 1} for n, other in ports.items() if n != name and other
    )


def free_pair() -> int:
    """A free port whose next one is free too (the cluster runs two of a kind on P and P+1)."""
    while True:
        port = free_port()
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port + 1)) != 0:
                return port


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def listeners(ports: Mapping[str, int]) -> set[int]:
    """Pids of the processes listening on `ports`."""
    found: set[int] = set()
    for port in ports.values():
        listing = subprocess.run(
            ["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True
        ).stdout
        found.update(int(pid) for pid in _pids(listing))
    return found


def _pids(listing: str) -> list[str]:
    return [part.split(",")[0] for part in listing.split("pid=")[1:]]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, killed but not reaped yet, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@contextmanager
def make_run(
    tmp_path: Path,
    *,
    via_make: bool = True,
    target: str = "run",
    env_file_lines: str = "",
    ports: Mapping[str, int] | None = None,
    **environment: str,
) -> Iterator[Run]:
    """Starts `make run` (or the script it runs; `target="run-cluster"` for the cluster) with a
    fresh env file in `tmp_path` (make writes it, as on a first run, unless `env_file_lines`
    are given) on free ports; always stops it."""
    names = ("NGINX_PORT", "BACKEND_PORT", "CENTRIFUGO_HTTP_SERVER_PORT")
    given = dict(ports or {})
    ports = {name: given.get(name) or 0 for name in names}
    for name in names:  # each pair apart from the others (a port freed once came back twice)
        while name not in given and (not ports[name] or _overlaps(ports[name], ports, name)):
            ports[name] = free_pair()
    if target == "run-cluster":
        redis = free_port()
        while _overlaps(redis, ports, "CLUSTER_REDIS_PORT"):  # apart from the pairs too
            redis = free_port()
        ports["CLUSTER_REDIS_PORT"] = redis
    env_file = tmp_path / "relaychat.env"
    if env_file_lines:
        subprocess.run([str(ROOT / "scripts" / "ensure-env.sh"), str(env_file)], check=True)
        env_file.write_text(env_file.read_text() + env_file_lines)
    state = tmp_path / "state"
    settings = {
        **{name: str(port) for name, port in ports.items()},
        "CENTRIFUGO_BIN": centrifugo_binary(),
        "SIM_TOKEN_DELAY_MIN_MS": "1",
        "SIM_TOKEN_DELAY_MAX_MS": "3",
        "PYTHONUNBUFFERED": "1",
        **environment,
    }
    if via_make:
        command = ["make", "--no-print-directory", target]
        command += [f"ENV_FILE={env_file}", f"RUN_STATE_DIR={state}"]
    else:
        command = [sys.executable, "-m", "scripts.run"]
        command += [f"--env-file={env_file}", f"--state-dir={state}"]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=clean_environment(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    run = Run(process, ports)
    try:
        yield run
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        run.reader.join(10)


async def test_make_run_writes_secrets_says_chat_only_when_it_works_and_ctrl_c_stops_all(
    tmp_path: Path,
) -> None:
    # NGINX_PORT is not 9000 and no origins are set: the page's own origin must be allowed.
    with make_run(tmp_path) as run:
        assert run.wait_for("chat at http://localhost:")
        assert "fresh random secrets" in run.output
        assert "=change-me" not in (tmp_path / "relaychat.env").read_text()
        async with httpx.AsyncClient() as http:  # no waiting: it answers already
            assert (await http.get(f"{run.url}/")).status_code == 200
        origin = f"http://localhost:{run.ports['NGINX_PORT']}"
        ws = run.url.replace("http", "ws") + "/connection/websocket"
        async with ChatSession.open(run.url, ws, origin) as session:
            assert answer_of(await session.ask("hello")) == answer_for("hello")
        servers = listeners(run.ports)
        assert len(servers) >= 3

        os.killpg(run.process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does

        run.finish()
        assert "SIGINT received" in run.output
        assert [pid for pid in servers if alive(pid)] == []
        assert [name for name, port in run.ports.items() if listening(port)] == []


async def test_make_run_cluster_runs_two_of_each_behind_nginx_and_ctrl_c_stops_all(
    tmp_path: Path,
) -> None:
    # A REDIS_URL the backend would refuse: the cluster gives its backends one of its own
    # (review: the check of the backend's settings before planning refused it).
    with make_run(tmp_path, target="run-cluster", REDIS_URL="localhost:6379") as run:
        assert run.wait_for("chat at http://localhost:")
        pairs = [
            port + offset
            for name, port in run.ports.items()
            if name in ("BACKEND_PORT", "CENTRIFUGO_HTTP_SERVER_PORT")
            for offset in (0, 1)
        ]
        assert all(listening(port) for port in pairs)  # two backends, two Centrifugo nodes
        origin = f"http://localhost:{run.ports['NGINX_PORT']}"
        ws = run.url.replace("http", "ws") + "/connection/websocket"
        async with ChatSession.open(run.url, ws, origin) as session:
            prompts = ["hello", "code", "explain", "streaming"]  # as many as one user may
            for _ in range(3):  # spread over both backends by nginx
                answers = await asyncio.gather(*(session.ask(prompt) for prompt in prompts))
                for prompt, publications in zip(prompts, answers, strict=True):
                    assert answer_of(publications) == answer_for(prompt)
        servers = listeners({**run.ports, **{str(port): port for port in pairs}})
        assert len(servers) >= 6  # redis, 2 Centrifugo, 2 backends, nginx
        # Whose line is whose: every service's output comes with its name in front.
        for name in ("redis", "centrifugo-1", "centrifugo-2", "backend-1", "backend-2"):
            assert re.search(rf"^{name} +\| \S", run.output, re.MULTILINE), name
        # Redis asks for this run's password (an outside-in probe: with none, any local
        # process read every stream), which no server's output shows.
        conf = (tmp_path / "state" / "redis.conf").read_text()
        password = conf.removeprefix("requirepass ").strip()
        assert len(password) == 64
        with socket.create_connection(("127.0.0.1", run.ports["CLUSTER_REDIS_PORT"])) as redis:
            redis.sendall(b"KEYS *\r\n")
            assert redis.recv(64).startswith(b"-NOAUTH")
        assert password not in run.output

        os.killpg(run.process.pid, signal.SIGINT)

        run.finish()
        assert [pid for pid in servers if alive(pid)] == []
        assert [port for port in [*run.ports.values(), *pairs] if listening(port)] == []


@pytest.mark.parametrize("twice", [False, True], ids=["once", "twice"])
async def test_ctrl_c_lets_the_running_answer_finish_and_a_second_one_ends_it(
    tmp_path: Path, twice: bool
) -> None:
    """Ctrl-C mid-answer: the answer runs to its end, whole, before the servers stop (the
    backend stops first and lets it finish; nginx and Centrifugo still carry it). A second
    Ctrl-C, a person's, ends it at once with "the server is stopping"."""
    # ~12 s an answer: longer than make run waited for a backend to stop before it was told to
    # wait for the answers too (10 s and the grace, here 0); it killed the backend then.
    delay = "40" if twice else "120"
    with make_run(
        tmp_path,
        SHUTDOWN_GRACE_SECONDS="0",
        SIM_TOKEN_DELAY_MIN_MS=delay,
        SIM_TOKEN_DELAY_MAX_MS=delay,
    ) as run:
        assert await asyncio.to_thread(run.wait_for, "chat at http://localhost:")
        origin = f"http://localhost:{run.ports['NGINX_PORT']}"
        ws = run.url.replace("http", "ws") + "/connection/websocket"
        async with ChatSession.open(run.url, ws, origin) as session:
            channel = session.new_channel()
            sub, collector = await session.subscribe(channel)
            await sub.ready(10)
            assert (await session.execute(channel, "code")).status_code == 202
            await asyncio.wait_for(collector.first.wait(), 10)
            servers = listeners(run.ports)

            os.killpg(run.process.pid, signal.SIGINT)
            signalled = time.monotonic()
            assert await asyncio.to_thread(run.wait_for, "running answer(s) up to 30 s", 20)
            if twice:
                # A person's second Ctrl-C, not a copy of the first one passed on by make.
                await asyncio.sleep(
                    max(0.0, 2 * SAME_SIGNAL_SECONDS - time.monotonic() + signalled)
                )
                os.killpg(run.process.pid, signal.SIGINT)
            await asyncio.wait_for(collector.done.wait(), 30)
            publications = collector.publications
        await asyncio.to_thread(run.finish)

    if twice:
        assert "ending the running answers now" in run.output
        assert publications[-1]["reason"] == "error"
        assert publications[-1]["error"] == SHUTDOWN.error
        assert answer_of(publications) != answer_for("code")
    else:
        assert answer_of(publications) == answer_for("code")
        assert publications[-1]["reason"] == "complete"
    assert [pid for pid in servers if alive(pid)] == []
    assert [name for name, port in run.ports.items() if listening(port)] == []


@pytest.mark.parametrize("target", ["process group", "make alone", "supervisor alone"])
def test_sigterm_stops_all_three(tmp_path: Path, target: str) -> None:
    with make_run(tmp_path, env_file_lines="\n") as run:
        run.wait_for("chat at")
        servers = listeners(run.ports)
        supervisor = _child(run.process.pid)

        if target == "process group":
            os.killpg(run.process.pid, signal.SIGTERM)
        elif target == "make alone":
            os.kill(run.process.pid, signal.SIGTERM)
        else:
            os.kill(supervisor, signal.SIGTERM)

        run.finish()
        assert "SIGTERM received" in run.output
        assert [pid for pid in servers if alive(pid)] == []
        assert [name for name, port in run.ports.items() if listening(port)] == []


def test_make_killed_alone_stops_all_three(tmp_path: Path) -> None:
    """A SIGKILL to make reaches none of its children: the supervisor must notice make's end
    itself (it went on running, with every server, orphaned)."""
    with make_run(tmp_path, env_file_lines="\n") as run:
        run.wait_for("chat at")
        servers = listeners(run.ports)

        os.kill(run.process.pid, signal.SIGKILL)

        run.finish()  # the output ends when the supervisor and every server have
        assert "SIGTERM received" in run.output
        assert [pid for pid in servers if alive(pid)] == []
        assert [name for name, port in run.ports.items() if listening(port)] == []


def _child(pid: int) -> int:
    """The one child of `pid`, found by the parent ids in /proc (its `children` file once read
    empty although the supervisor ran: the kernel documents it as unreliable)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    assert len(children) == 1, children
    return children[0]


def test_a_taken_port_is_an_immediate_error_naming_it_and_its_process(tmp_path: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        with make_run(
            tmp_path, via_make=False, env_file_lines="\n", ports={"NGINX_PORT": port}
        ) as run:
            assert not run.wait_for("chat at")
            assert run.finish() == 1

    assert f"port {port} (nginx, NGINX_PORT) is not free" in run.output
    assert f"(pid {os.getpid()})" in run.output
    assert not listening(run.ports["CENTRIFUGO_HTTP_SERVER_PORT"])
    assert not listening(run.ports["BACKEND_PORT"])


def test_a_service_that_cannot_start_is_named_and_the_others_are_stopped(tmp_path: Path) -> None:
    """nginx, the last to start, exits at once (a stand-in that says why, as nginx does): the
    two already running are stopped."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = system_commands.find("nginx")  # in /usr/sbin, off a user's PATH
    assert real is not None
    fake = bin_dir / "nginx"
    fake.write_text(  # `nginx -V` answers as the real one: the config is rendered from it
        f'#!/bin/sh\ncase "$*" in *-V*) exec {real} "$@";; esac\n'
        'echo "nginx: [emerg] a stand-in that cannot start" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    with make_run(tmp_path, via_make=False, env_file_lines="\n", PATH=path) as run:
        assert not run.wait_for("chat at")
        assert run.finish() == 1

    reason = run.output.find("nginx: [emerg] a stand-in that cannot start")  # nginx's own
    said = run.output.find("run: nginx exited with code 1 before it answered")
    assert 0 <= reason < said  # "its output is above": it is
    assert not listening(run.ports["CENTRIFUGO_HTTP_SERVER_PORT"])
    assert not listening(run.ports["BACKEND_PORT"])


def test_the_backend_s_settings_are_refused_before_anything_starts(tmp_path: Path) -> None:
    """By the backend's own rules, every reason at once; they came after Centrifugo had
    started, from the backend."""
    # MAX_TEXT_CHARS too, which planning reads for nginx's body limit: it came alone (a docs
    # walkthrough), before the backend's rules were asked.
    bad: dict[str, Any] = {"LOG_FORMAT": "xml", "MAX_STREAM_SECONDS": "soon", "MAX_TEXT_CHARS": "0"}
    with make_run(tmp_path, via_make=False, env_file_lines="\n", **bad) as run:
        assert not run.wait_for("chat at", timeout=20)
        assert run.finish() == 1

    assert "run: the backend's settings are refused:\n" in run.output
    assert "  LOG_FORMAT: Input should be 'text' or 'json'\n" in run.output
    assert "  MAX_STREAM_SECONDS: Input should be a valid number" in run.output
    assert "  MAX_TEXT_CHARS: Input should be greater than or equal to 1\n" in run.output
    assert "Traceback" not in run.output
    assert not (tmp_path / "state").exists()  # nothing started, nothing written
    assert [name for name, port in run.ports.items() if listening(port)] == []


def test_the_environment_overrides_the_env_file(tmp_path: Path) -> None:
    with (
        fake_openai_server() as fake,
        make_run(
            tmp_path,
            env_file_lines="LLM_PROVIDER=simulated\nOPENAI_MODEL=from-the-file\n",
            LLM_PROVIDER="openai",
            OPENAI_BASE_URL=fake.url,
        ) as run,
    ):
        run.wait_for("chat at")
        with httpx.Client(base_url=run.url, timeout=30) as http:
            http.post("/api/token")  # a session: every route that answers needs one
            response = http.post("/api/chat/sync", json={"prompt": "hi"})

    assert response.status_code == 200, response.text
    assert response.json() == {"response": "".join(ANSWER)}
    assert fake.requests[0]["model"] == "from-the-file"  # the file still fills the rest


@pytest.mark.parametrize("crashing", ["backend", "centrifugo"])
def test_a_crashed_server_is_reported_and_restarted(tmp_path: Path, crashing: str) -> None:
    setting = {"backend": "BACKEND_PORT", "centrifugo": "CENTRIFUGO_HTTP_SERVER_PORT"}[crashing]
    with make_run(tmp_path, via_make=False, env_file_lines="\n") as run:
        run.wait_for("chat at")
        (victim,) = listeners({setting: run.ports[setting]})

        os.kill(victim, signal.SIGKILL)  # a crash, an OOM kill

        run.wait_for(f"{crashing} exited with code -9; restarting it")
        run.wait_for(f"{crashing} restarted")
        assert httpx.get(f"{run.url}/api/health").status_code == 200
        ready = httpx.get(f"{run.url}/api/ready")
        assert ready.status_code == 200, ready.text
        assert listeners({setting: run.ports[setting]}) != {victim}


def test_a_crashed_nginx_is_restarted_without_its_old_workers(tmp_path: Path) -> None:
    """A kill -9 of nginx's master leaves its workers running, still holding the port: the new
    nginx could not bind, the old workers answered its readiness check, and after five tries
    the supervisor gave up and stopped every server (found by an outside-in probe)."""
    with make_run(tmp_path, via_make=False, env_file_lines="\n") as run:
        run.wait_for("chat at")
        servers = {
            name: run.ports[name] for name in ("BACKEND_PORT", "CENTRIFUGO_HTTP_SERVER_PORT")
        }
        others = listeners(servers)
        old = listeners({"NGINX_PORT": run.ports["NGINX_PORT"]})
        (master,) = [pid for pid in old if _parent(pid) not in old]
        assert len(old) > 1, "nginx runs no workers"

        os.kill(master, signal.SIGKILL)

        run.wait_for("nginx exited with code -9; restarting it")
        run.wait_for("nginx restarted")
        assert not any(alive(pid) for pid in old), "the old workers are still running"
        new = listeners({"NGINX_PORT": run.ports["NGINX_PORT"]})
        assert new
        assert not new & old
        assert httpx.get(f"{run.url}/", timeout=10).status_code == 200
        assert httpx.get(f"{run.url}/api/ready", timeout=10).status_code == 200
        assert listeners(servers) == others  # the backend and Centrifugo were left alone
        assert "giving up" not in run.output


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[1])


def _nginx_master(port: int) -> int:
    nginx = listeners({"NGINX_PORT": port})
    (master,) = [pid for pid in nginx if _parent(pid) not in nginx]
    return master


def test_a_second_make_run_on_the_same_state_dir_is_refused_and_the_first_runs_on(
    tmp_path: Path,
) -> None:
    """Found by an outside-in probe: a second `make run` of the same checkout (on other ports
    here, so that none of its port checks fails) rewrote the first's nginx config in the state
    dir; when the first's nginx later crashed, it came back on the second's port."""
    with make_run(tmp_path, via_make=False, env_file_lines="\n") as first:
        first.wait_for("chat at")
        state = tmp_path / "state"
        # What the first run wrote to run from (its logs go on growing as it serves: a loaded
        # CI run saw nginx log the first run's own readiness request after this point).
        written = {
            path: path.read_bytes()
            for path in state.rglob("*")
            if path.is_file() and path.suffix != ".log"
        }

        with make_run(tmp_path, env_file_lines="\n") as second:  # make, RUN_STATE_DIR=state
            assert not second.wait_for("chat at")
            assert second.finish() != 0

        holder = f"the state dir {state} is in use by another `make run` (pid {first.process.pid})"
        assert holder in second.output
        assert "RUN_STATE_DIR=" in second.output
        assert "Traceback" not in second.output
        assert {path: path.read_bytes() for path in written} == written
        assert not any(listening(port) for port in second.ports.values())

        os.kill(_nginx_master(first.ports["NGINX_PORT"]), signal.SIGKILL)

        first.wait_for("nginx restarted")
        assert httpx.get(f"{first.url}/", timeout=10).status_code == 200
        assert httpx.get(f"{first.url}/api/ready", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("NGINX_PORT", "abc", "NGINX_PORT is 'abc': a port number, 1-65535"),
        ("CENTRIFUGO_HTTP_SERVER_PORT", "0",
         "CENTRIFUGO_HTTP_SERVER_PORT is '0': a port number, 1-65535"),
        # By the backend's rules, with every other reason (a docs walkthrough: it came alone).
        ("MAX_TEXT_CHARS", "1e12", "the backend's settings are refused:\n  MAX_TEXT_CHARS: "
         "Input should be a valid integer, unable to parse string as an integer"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_one_readable_line_before_anything_starts(
    tmp_path: Path, setting: str, value: str, message: str
) -> None:
    """Found by an outside-in probe: a traceback (`int()`), or for port 0 a 30 s wait for a
    Centrifugo that never answered."""
    bad: dict[str, Any] = {setting: value}  # (str values, not `ports`)
    with make_run(tmp_path, via_make=False, env_file_lines="\n", **bad) as run:
        assert not run.wait_for("chat at", timeout=20)
        assert run.finish() == 1

    assert f"run: {message}\n" in run.output
    assert "Traceback" not in run.output
    assert not (tmp_path / "state").exists()  # nothing started, nothing written
    assert [name for name, port in run.ports.items() if listening(port)] == []


async def test_on_one_interface_s_address_the_chat_is_announced_and_works_there(
    tmp_path: Path,
) -> None:
    """Found by an outside-in probe: with NGINX_HOST=192.0.2.2 (as .env.example suggests) it
    said "chat at http://localhost:...", where nothing answered, and Centrifugo refused the
    page's WebSocket from its own address (the default origins named only localhost). Here
    127.0.0.2: an address other than localhost's that every Linux machine has (all of
    127.0.0.0/8 is loopback), so the test runs everywhere."""
    address = "127.0.0.2"
    with make_run(tmp_path, via_make=False, env_file_lines="\n", NGINX_HOST=address) as run:
        page = f"http://{address}:{run.ports['NGINX_PORT']}"
        assert run.wait_for(f"chat at {page} ")
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{page}/")).status_code == 200
        ws = page.replace("http", "ws") + "/connection/websocket"
        async with ChatSession.open(page, ws, page) as session:
            assert answer_of(await session.ask("hello")) == answer_for("hello")


async def test_nginx_and_the_backend_on_ipv6_loopback_serve_the_chat(tmp_path: Path) -> None:
    """Found by an outside-in probe: `::1` was refused as "port ... is not free: Address family
    for hostname not supported" (the port check's socket was IPv4's); nginx listens on
    `[::1]:port`, the URL form, which NGINX_HOST may be given in too."""
    if not ipv6_loopback():
        missing_component("this machine has no IPv6 loopback (::1): enable IPv6 on lo")
    with make_run(
        tmp_path, via_make=False, env_file_lines="\n", NGINX_HOST="[::1]", BACKEND_HOST="::1"
    ) as run:
        port = run.ports["NGINX_PORT"]
        assert run.wait_for(f"chat at http://localhost:{port} ")
        page = f"http://[::1]:{port}"
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{page}/")).status_code == 200
            assert (await http.get(f"{page}/api/ready")).status_code == 200  # to the backend
        assert not listening(port)  # on IPv6 only, as asked
        ws = page.replace("http", "ws") + "/connection/websocket"
        async with ChatSession.open(page, ws, f"http://localhost:{port}") as session:
            assert answer_of(await session.ask("hello")) == answer_for("hello")
