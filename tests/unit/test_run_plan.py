"""`make run`'s plan of servers: bad settings, ports that clash and a state dir in use are
errors before anything starts, and the plan itself writes nothing."""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from scripts.run import (
    LOCK_FILE,
    RESTARTS_PER_MINUTE,
    SAME_SIGNAL_SECONDS,
    Service,
    StartFailed,
    Stop,
    StopSignals,
    Supervisor,
    backend_setting,
    chat_at,
    check_backend_settings,
    check_distinct_ports,
    check_port,
    cluster_services,
    end_group,
    known_settings,
    misspelled_settings,
    refusal,
    services,
    settings,
    sole_run,
    stopping_order,
    trusted_proxy,
)
from tests.processes import ROOT, ipv6_loopback, missing_component

PORTS = {"NGINX_PORT": "9321", "CLUSTER_REDIS_PORT": "9328"}


def test_the_cluster_s_second_backend_on_the_first_centrifugo_s_port_is_named(
    tmp_path: Path,
) -> None:
    """Found by a newcomer's walkthrough: adjacent ports fine for `make run` made the second
    backend fail to bind only after Redis, Centrifugo and the first backend had started."""
    env = {**PORTS, "BACKEND_PORT": "9322", "CENTRIFUGO_HTTP_SERVER_PORT": "9323"}
    plan = cluster_services(env, tmp_path, "centrifugo")
    with pytest.raises(StartFailed) as refused:
        check_distinct_ports(plan)
    message = str(refused.value)
    assert "port 9323 is given to both centrifugo-1 (CENTRIFUGO_HTTP_SERVER_PORT)" in message
    assert "backend-2 (BACKEND_PORT)" in message
    assert "the port after their first's" in message


def test_the_backend_s_settings_are_checked_as_the_backend_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment make run gives it, then the state dir's .env: not the .env of where
    make run was started (the checkout's, when another ENV_FILE was asked for: review)."""
    started_in = tmp_path / "checkout"
    started_in.mkdir()
    (started_in / ".env").write_text("LOG_FORMAT=xml\n")
    monkeypatch.chdir(started_in)
    secrets = {
        name: f"{name.lower()}-0123456789abcdefghij"
        for name in (
            "CENTRIFUGO_HTTP_API_KEY",
            "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY",
            "SESSION_SECRET",
        )
    }
    plan = services(PORTS, tmp_path / "state", "centrifugo")

    check_backend_settings(plan, {**PORTS, **secrets}, tmp_path / "state")
    with pytest.raises(StartFailed, match="  LOG_FORMAT: Input should be 'text' or 'json'"):
        check_backend_settings(plan, {**PORTS, **secrets, "LOG_FORMAT": "xml"}, tmp_path / "state")
    with pytest.raises(StartFailed, match="missing secrets"):
        check_backend_settings(plan, PORTS, tmp_path / "state")


@pytest.mark.parametrize(
    "value",
    [
        "proxy.example",
        "10.0.0.1 10.0.0.2",
        "10.0.0.0/33",
        # Review: an IPv6 zone id may hold anything, and Python's parser takes it (this one as
        # ::/0); written into nginx's config, it trusted every address or added a directive.
        "fe80::1%eth0,0.0.0.0/0",
        "fe80::1%eth0;return 200 injected;#",
        "10.0.0.1,",
        "10.0.0.1,cafe",
    ],
)
def test_a_trusted_proxy_that_is_no_address_is_refused_before_anything_starts(
    tmp_path: Path, value: str
) -> None:
    refused = f"NGINX_TRUSTED_PROXY is {re.escape(repr(value))}: an address"
    with pytest.raises(StartFailed, match=refused):
        services({**PORTS, "NGINX_TRUSTED_PROXY": value}, tmp_path, "centrifugo")


def test_a_proxy_on_this_machine_is_trusted_over_either_loopback_unless_told() -> None:
    assert trusted_proxy({}) == "127.0.0.1,::1"
    assert trusted_proxy({"NGINX_TRUSTED_PROXY": " 10.0.0.0/8 "}) == "10.0.0.0/8"
    # Several, as the nginx image takes them (nginx/trusted-proxy.envsh): a line each for nginx.
    several = {"NGINX_TRUSTED_PROXY": "10.0.0.1, 2001:db8::/32"}
    assert trusted_proxy(several) == "10.0.0.1,2001:db8::/32"


def test_distinct_ports_pass(tmp_path: Path) -> None:
    env = {**PORTS, "BACKEND_PORT": "9322", "CENTRIFUGO_HTTP_SERVER_PORT": "9324"}
    check_distinct_ports(cluster_services(env, tmp_path, "centrifugo"))
    check_distinct_ports(services(env, tmp_path, "centrifugo"))


def test_one_port_for_two_settings_is_named(tmp_path: Path) -> None:
    env = {**PORTS, "BACKEND_PORT": "9321", "CENTRIFUGO_HTTP_SERVER_PORT": "9324"}
    with pytest.raises(StartFailed, match=r"port 9321 is given to both backend .*and nginx"):
        check_distinct_ports(services(env, tmp_path, "centrifugo"))


@pytest.mark.parametrize(
    ("host", "reached_at"),
    [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("10.1.2.3", "10.1.2.3"),
     ("::1", "[::1]"), ("[::1]", "[::1]"), ("::", "[::1]")],
)  # fmt: skip
def test_servers_are_asked_whether_they_are_up_where_they_listen(
    tmp_path: Path, host: str, reached_at: str
) -> None:
    """Found in review: the probes asked 127.0.0.1 whatever NGINX_HOST or BACKEND_HOST said, so
    a server on one other address never counted as started."""
    env = {**PORTS, "BACKEND_PORT": "9322", "CENTRIFUGO_HTTP_SERVER_PORT": "9324"}
    plan = services({**env, "NGINX_HOST": host, "BACKEND_HOST": host}, tmp_path, "centrifugo")
    by_name = {service.name: service for service in plan}
    assert by_name["nginx"].ready_url == f"http://{reached_at}:9321/"
    assert by_name["backend"].ready_url == f"http://{reached_at}:9322/api/health"


def test_what_is_left_of_a_service_is_killed_and_zombies_do_not_count() -> None:
    """A killed process that nobody reaped yet (here this test, its parent, has not waited for
    it) holds no port; waiting for it to go kept every restart waiting the whole timeout when
    the orphans' new parent (a container's PID 1) reaps late or never (found in review)."""
    leader = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        assert end_group(leader.pid, timeout=1.0)  # not timed out: the zombie left is no one
    finally:
        leader.kill()
    assert leader.wait(5) == -9


def test_a_signal_passed_on_at_once_is_the_same_stop_and_a_later_one_hurries() -> None:
    """make, when its process group gets SIGTERM, sends one more to the supervisor: raised while
    the first was being handled, it went unhandled (a traceback in a CI run, and no grace)."""
    now = [100.0]
    handler = StopSignals(clock=lambda: now[0])
    with pytest.raises(Stop, match="SIGTERM"):
        handler(signal.SIGTERM, None)
    now[0] += SAME_SIGNAL_SECONDS / 10
    handler(signal.SIGTERM, None)  # the same request: nothing raised
    now[0] += SAME_SIGNAL_SECONDS * 2
    with pytest.raises(Stop, match="SIGINT"):
        handler(signal.SIGINT, None)  # a second Ctrl-C: hurries the stop


class FakeServer:
    """A server process as `Supervisor.stop` sees it: stops after `terms` SIGTERMs (None:
    never, only a kill ends it); `on_wait` runs at each of the supervisor's waits (a signal
    arriving meanwhile)."""

    def __init__(self, name: str, log: list[str], terms: int | None, on_wait: Any = None) -> None:
        self.name, self.log, self.terms, self.on_wait = name, log, terms, on_wait
        self.pid = id(self)
        self.returncode: int | None = None
        self._terms = 0

    def poll(self) -> int | None:
        return self.returncode

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def send_signal(self, signum: int) -> None:
        self.log.append(f"{self.name} {signal.Signals(signum).name}")
        self._terms += 1
        if self.terms is not None and self._terms >= self.terms and self.returncode is None:
            self.returncode = 0

    def kill(self) -> None:
        self.log.append(f"{self.name} SIGKILL")
        self.returncode = -9

    def wait(self, timeout: float | None = None) -> int:
        if self.on_wait is not None:
            self.on_wait()
        if self.returncode is None:
            assert timeout is not None, "a wait without a bound on a server that runs"
            raise subprocess.TimeoutExpired("server", timeout)
        return self.returncode


def stopping(
    log: list[str], terms: Mapping[str, int | None], signals_at: dict[int, int], drain: float = 30
) -> Supervisor:
    """A supervisor of fake servers (name: SIGTERMs it takes to stop), stopped after a first
    signal; `signals_at`: at the supervisor's n-th wait, that many more signals arrive."""
    now, waits = [0.0], [0]
    handler = StopSignals(clock=lambda: now[0])

    def on_wait() -> None:
        waits[0] += 1
        for _ in range(signals_at.get(waits[0], 0)):
            now[0] += 1  # later than SAME_SIGNAL_SECONDS: each is a request of its own
            handler(signal.SIGINT, None)

    supervisor = Supervisor({}, Path("/nonexistent"), grace=5, drain=drain, signals=handler)
    with pytest.raises(Stop):
        handler(signal.SIGINT, None)  # the Ctrl-C that stops it
    for name, count in terms.items():
        server = FakeServer(name, log, count, on_wait)
        service = Service(name, [], "", 0, "", "")
        supervisor.running.append((service, server))  # type: ignore[arg-type]
    supervisor.stop()
    return supervisor


def test_a_second_ctrl_c_hurries_every_backend_and_stops_the_rest_as_usual() -> None:
    """The backends stop all at once; a second signal, while they let answers finish, sends
    each a second SIGTERM; nginx and Centrifugo then stop as usual, nothing killed."""
    log: list[str] = []
    terms = {"backend-1": 2, "backend-2": 2, "nginx": 1, "centrifugo-1": 1}
    stopping(log, terms, {3: 1})
    assert log == [
        "backend-1 SIGTERM",
        "backend-2 SIGTERM",  # at once, not after backend-1's wait
        "backend-1 SIGTERM",
        "backend-2 SIGTERM",
        "nginx SIGTERM",
        "centrifugo-1 SIGTERM",
    ]


def test_a_third_ctrl_c_kills_everything_still_running_without_waiting() -> None:
    """Review: "a third kills what still runs" killed only the server being waited for; the
    other backend and nginx and Centrifugo were each waited for again."""
    log: list[str] = []
    terms = {"backend-1": None, "backend-2": None, "nginx": None, "centrifugo-1": None}
    supervisor = stopping(log, terms, {2: 1, 4: 1})
    assert log == [
        "backend-1 SIGTERM",
        "backend-2 SIGTERM",
        "backend-1 SIGTERM",
        "backend-2 SIGTERM",
        "backend-1 SIGKILL",
        "backend-2 SIGKILL",
        "nginx SIGTERM",
        "nginx SIGKILL",
        "centrifugo-1 SIGTERM",
        "centrifugo-1 SIGKILL",
    ]
    assert supervisor.running == []


def test_without_answers_to_let_finish_a_second_ctrl_c_kills_what_is_being_stopped() -> None:
    log: list[str] = []
    stopping(log, {"backend": None, "nginx": 1}, {2: 1}, drain=0)
    assert log == ["backend SIGTERM", "backend SIGKILL", "nginx SIGTERM"]


def test_a_stop_says_what_it_stops_in_its_order_and_what_a_second_ctrl_c_does() -> None:
    """A probe: the cluster's stop said "the backend, then nginx, then Centrifugo" (two of
    each, and Redis), and nothing said that answers would be let finish."""

    def said(names: list[str], drain: float = 30) -> str:
        supervisor = Supervisor({}, Path("/nonexistent"), drain=drain)
        for name in names:
            supervisor.running.append((Service(name, [], "", 0, "", ""), None))  # type: ignore[arg-type]
        return stopping_order(supervisor)

    single = ["centrifugo", "backend", "nginx"]
    assert said(single) == (
        "stopping the backend (it lets running answers finish, up to 30 s; Ctrl-C again ends"
        " them now, a third time kills everything), then nginx, then Centrifugo"
    )
    assert said(single, drain=0) == "stopping the backend, then nginx, then Centrifugo"
    cluster = ["redis", "centrifugo-1", "centrifugo-2", "backend-1", "backend-2", "nginx"]
    assert said(cluster, drain=2.5) == (
        "stopping the backends (they let running answers finish, up to 2.5 s; Ctrl-C again"
        " ends them now, a third time kills everything), then nginx, then the Centrifugo"
        " nodes, then Redis"
    )


def plan_of(tmp_path: Path, **settings: str) -> list[Service]:
    env = {**PORTS, "BACKEND_PORT": "9322", "CENTRIFUGO_HTTP_SERVER_PORT": "9324", **settings}
    return services(env, tmp_path / "state", "centrifugo")


def test_planning_writes_nothing_into_the_state_dir(tmp_path: Path) -> None:
    """Found by an outside-in probe: planning rendered nginx's config into the state dir before
    the port checks, so that a second `make run` that then failed had rewritten the running
    one's config, from which that one restarted a crashed nginx on the wrong port."""
    env = {**PORTS, "BACKEND_PORT": "9322", "CENTRIFUGO_HTTP_SERVER_PORT": "9324"}
    services(env, tmp_path / "state", "centrifugo")
    cluster_services(env, tmp_path / "state", "centrifugo")
    assert not (tmp_path / "state").exists()


def test_a_state_dir_in_use_is_refused_naming_it_and_its_holder_and_left_alone(
    tmp_path: Path,
) -> None:
    """One run per state dir: a second one (the same checkout's `make run` again, on other
    ports) is refused before it writes anything there, and told how to run beside it."""
    state = tmp_path / "state"
    with sole_run(state):
        holder = (state / LOCK_FILE).read_text()
        with pytest.raises(StartFailed) as refused, sole_run(state):
            pass
        assert (state / LOCK_FILE).read_text() == holder == f"{os.getpid()}\n"
    message = str(refused.value)
    assert f"the state dir {state} is in use by another `make run` (pid {os.getpid()})" in message
    assert "stop that one" in message
    assert "RUN_STATE_DIR=" in message
    with sole_run(state):  # let go when the run ends
        pass


@pytest.mark.parametrize("host", ["::1", "192.0.2.2", "[::1]"])
def test_a_centrifugo_address_nginx_and_the_backend_would_not_reach_is_refused(
    tmp_path: Path, host: str
) -> None:
    """Review: any CENTRIFUGO_HTTP_SERVER_ADDRESS passed the checks and Centrifugo was probed
    ready there, but nginx and the backend went on reaching it at 127.0.0.1: nothing worked
    after "chat at"."""
    with pytest.raises(StartFailed, match="CENTRIFUGO_HTTP_SERVER_ADDRESS is '"):
        plan_of(tmp_path, CENTRIFUGO_HTTP_SERVER_ADDRESS=host)
    for fine in ("127.0.0.1", "0.0.0.0", ""):
        plan_of(tmp_path, CENTRIFUGO_HTTP_SERVER_ADDRESS=fine)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"NGINX_PORT": "abc"}, "NGINX_PORT is 'abc': a port number, 1-65535"),
        ({"NGINX_PORT": "-1"}, "NGINX_PORT is '-1': a port number, 1-65535"),
        ({"NGINX_PORT": "70000"}, "NGINX_PORT is '70000': a port number, 1-65535"),
        ({"NGINX_PORT": "0"}, "NGINX_PORT is '0': a port number, 1-65535"),
        ({"BACKEND_PORT": "abc"}, "BACKEND_PORT is 'abc': a port number, 1-65535"),
        ({"CENTRIFUGO_HTTP_SERVER_PORT": "0"},
         "CENTRIFUGO_HTTP_SERVER_PORT is '0': a port number, 1-65535"),
        ({"MAX_TEXT_CHARS": "abc"}, "MAX_TEXT_CHARS is 'abc': a whole number, at least 1"),
        ({"MAX_TEXT_CHARS": "1e12"}, "MAX_TEXT_CHARS is '1e12': a whole number, at least 1"),
        ({"MAX_HISTORY_CHARS": "-1"}, "MAX_HISTORY_CHARS is '-1': a whole number, at least 0"),
    ],
)  # fmt: skip
def test_a_bad_number_setting_is_a_readable_error_naming_it(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    """Found by an outside-in probe: `int()` of these was a traceback, a port out of range an
    OverflowError from bind, and port 0 nginx's error or a 30 s wait for Centrifugo."""
    with pytest.raises(StartFailed) as refused:
        plan_of(tmp_path, **settings)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"CLUSTER_REDIS_PORT": "abc"}, "CLUSTER_REDIS_PORT is 'abc': a port number, 1-65535"),
        ({"BACKEND_PORT": "65535"}, "BACKEND_PORT is '65535': a port number, 1-65534 (the "
         "second of its kind takes the next one)"),
    ],
)  # fmt: skip
def test_a_bad_cluster_port_is_a_readable_error_naming_it(
    tmp_path: Path, settings: dict[str, str], message: str
) -> None:
    env = {**PORTS, "BACKEND_PORT": "9322", "CENTRIFUGO_HTTP_SERVER_PORT": "9324", **settings}
    with pytest.raises(StartFailed) as refused:
        cluster_services(env, tmp_path, "centrifugo")
    assert str(refused.value) == message


def test_the_shutdown_grace_is_checked_by_the_backend_s_rules_before_anything_starts() -> None:
    """It was read only while stopping (a traceback then, the servers left unstopped)."""
    with pytest.raises(StartFailed, match=r"^SHUTDOWN_GRACE_SECONDS is 'x': a number, at least 0$"):
        backend_setting({"SHUTDOWN_GRACE_SECONDS": "x"}, "SHUTDOWN_GRACE_SECONDS")
    assert backend_setting({"SHUTDOWN_GRACE_SECONDS": "0.5"}, "SHUTDOWN_GRACE_SECONDS") == 0.5
    assert backend_setting({}, "SHUTDOWN_GRACE_SECONDS") == 5.0


@pytest.mark.parametrize(
    ("host", "chat", "origin"),
    [
        ("127.0.0.1", "http://localhost:9321", None),
        ("::1", "http://localhost:9321", None),
        ("192.0.2.2", "http://192.0.2.2:9321", "http://192.0.2.2:9321"),
        ("fd00::2", "http://[fd00::2]:9321", "http://[fd00::2]:9321"),
        ("[FD00:0::2]", "http://[fd00::2]:9321", "http://[fd00::2]:9321"),
    ],
)
def test_the_page_is_announced_and_allowed_where_nginx_listens(
    tmp_path: Path, host: str, chat: str, origin: str | None
) -> None:
    """Found by an outside-in probe: on NGINX_HOST=192.0.2.2 "chat at" said localhost, where
    nothing answered, and Centrifugo refused the page's WebSocket from 192.0.2.2."""
    env = {**PORTS, "NGINX_HOST": host}
    centrifugo, _, nginx = plan_of(tmp_path, NGINX_HOST=host)
    assert chat_at(nginx, env) == f"chat at {chat} (Ctrl-C stops everything)"
    origins = centrifugo.env["CENTRIFUGO_CLIENT_ALLOWED_ORIGINS"].split()
    assert origins[:2] == ["http://localhost:9321", "http://127.0.0.1:9321"]
    assert origins[2:] == ([origin] if origin else [])


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_on_every_interface_the_local_page_is_announced_and_how_others_reach_it(
    tmp_path: Path, host: str
) -> None:
    *_, nginx = plan_of(tmp_path, NGINX_HOST=host)
    line = chat_at(nginx, {"NGINX_HOST": host})
    assert line.startswith("chat at http://localhost:9321 (Ctrl-C stops everything); ")
    assert f"under this machine's name (http://{socket.gethostname()}:9321)" in line
    assert line.endswith("which CENTRIFUGO_CLIENT_ALLOWED_ORIGINS must then list")
    origins = {"NGINX_HOST": host, "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS": "http://chat.lan:9321"}
    assert "ALLOWED_ORIGINS" not in chat_at(nginx, origins)  # set already


@pytest.mark.parametrize(
    ("in_file", "in_environment"), [("", None), ("http://a.example", ""), ("", "  ")]
)
def test_empty_allowed_origins_are_unset_and_the_page_s_own_are_allowed(
    tmp_path: Path, in_file: str, in_environment: str | None
) -> None:
    """Found by an outside-in probe: kept empty, Centrifugo fell back to config.json's origins
    (of port 9000); docker compose takes an empty one as unset too."""
    env_file = tmp_path / "relaychat.env"
    env_file.write_text(f"CENTRIFUGO_CLIENT_ALLOWED_ORIGINS={in_file}\n")
    environ = {**PORTS, "BACKEND_PORT": "9322", "CENTRIFUGO_HTTP_SERVER_PORT": "9324"}
    if in_environment is not None:
        environ["CENTRIFUGO_CLIENT_ALLOWED_ORIGINS"] = in_environment
    centrifugo, *_ = services(settings(env_file, environ), tmp_path, "centrifugo")
    origins = centrifugo.env["CENTRIFUGO_CLIENT_ALLOWED_ORIGINS"]
    assert origins == "http://localhost:9321 http://127.0.0.1:9321"


def test_allowed_origins_that_are_set_are_kept(tmp_path: Path) -> None:
    env_file = tmp_path / "relaychat.env"
    env_file.write_text("CENTRIFUGO_CLIENT_ALLOWED_ORIGINS=https://chat.example.com\n")
    centrifugo, *_ = services(settings(env_file, PORTS), tmp_path, "centrifugo")
    assert centrifugo.env["CENTRIFUGO_CLIENT_ALLOWED_ORIGINS"] == "https://chat.example.com"


@pytest.mark.parametrize("host", ["::1", "[::1]", "::"])
def test_an_ipv6_host_is_checked_with_an_ipv6_socket(tmp_path: Path, host: str) -> None:
    """Found by an outside-in probe: an IPv4 socket refused `::1`, worded as a port in use
    ("Address family for hostname not supported; held by a process this user cannot see")."""
    if not ipv6_loopback():
        missing_component("this machine has no IPv6 loopback (::1): enable IPv6 on lo")
    *_, nginx = plan_of(tmp_path, NGINX_HOST=host, NGINX_PORT="19391")
    check_port(nginx)  # free: nothing raised


def test_every_address_a_host_name_stands_for_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review: only the first address a name resolves to was checked, while nginx listens at
    each (`localhost`: ::1 and 127.0.0.1 on many machines). Here the name stands for ::1 and
    127.0.0.1, and the port is taken on 127.0.0.1 only."""
    if not ipv6_loopback():
        missing_component("this machine has no IPv6 loopback (::1): enable IPv6 on lo")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        both = [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]
        monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: both)
        *_, nginx = plan_of(tmp_path, NGINX_HOST="both.example", NGINX_PORT=str(port))
        with pytest.raises(StartFailed, match=f"port {port} .* is not free"):
            check_port(nginx)


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("bogus.invalid", "NGINX_HOST 'bogus.invalid' cannot be listened on: "),
        ("203.0.113.7", "NGINX_HOST '203.0.113.7' cannot be listened on: Cannot assign requested "
         "address (no interface of this machine has that address)"),
    ],
)  # fmt: skip
def test_an_address_that_cannot_be_listened_on_is_not_called_a_taken_port(
    tmp_path: Path, host: str, reason: str
) -> None:
    """An unknown name (or one this machine has no interface for) was reported as "port ... is
    not free ... held by a process this user cannot see"."""
    *_, nginx = plan_of(tmp_path, NGINX_HOST=host, NGINX_PORT="19392")
    with pytest.raises(StartFailed) as refused:
        check_port(nginx)
    assert str(refused.value).startswith(reason)
    assert "not free" not in str(refused.value)


def test_a_port_only_root_may_use_is_named_as_such(tmp_path: Path) -> None:
    *_, nginx = plan_of(tmp_path, NGINX_PORT="80")
    refused = refusal(nginx, PermissionError(errno.EACCES, "Permission denied"))
    assert str(refused) == (
        "port 80 (nginx, NGINX_PORT) cannot be listened on: Permission denied (a port below "
        "1024 needs root). Set NGINX_PORT to another port."
    )


class ScriptedExits(Supervisor):
    """A supervisor whose services exit in the order given; it starts nothing."""

    def __init__(self, tmp_path: Path, exits: list[Service]) -> None:
        super().__init__({}, tmp_path)
        self.exits = exits
        self.started: list[str] = []

    def wait_any(self) -> tuple[Service, int]:
        if not self.exits:
            raise Stop("SIGTERM")
        return self.exits.pop(0), -9

    def start(self, service: Service) -> None:
        self.started.append(service.name)


def test_the_restart_budget_is_each_service_s_own(tmp_path: Path) -> None:
    """Cluster probe: one count for all services gave up on the whole cluster after six
    different processes crashed once each within a minute (one incident)."""
    plan = cluster_services(PORTS, tmp_path / "state", "centrifugo")
    each_once = plan[:6]
    supervisor = ScriptedExits(tmp_path, [*each_once, *each_once[:2]])
    with pytest.raises(Stop):
        supervisor.keep_running()
    assert supervisor.started == [s.name for s in [*each_once, *each_once[:2]]]

    one = plan[0]
    flapping = ScriptedExits(tmp_path, [one] * (RESTARTS_PER_MINUTE + 1))
    with pytest.raises(StartFailed, match=f"{one.name} keeps exiting"):
        flapping.keep_running()
    assert len(flapping.started) == RESTARTS_PER_MINUTE


def test_each_cluster_backend_publishes_through_its_own_node_then_the_other(
    tmp_path: Path,
) -> None:
    """A cluster probe: each backend had its own node only, so one node that hung held up
    every stream of its backend (readers of the other node included)."""
    plan = {s.name: s for s in cluster_services(PORTS, tmp_path / "state", "centrifugo")}
    first, second = (plan[f"centrifugo-{n}"].port for n in (1, 2))
    assert plan["backend-1"].env["RELAY_CENTRIFUGO_API_URL"] == (
        f"http://127.0.0.1:{first}/api http://127.0.0.1:{second}/api"
    )
    assert plan["backend-2"].env["RELAY_CENTRIFUGO_API_URL"] == (
        f"http://127.0.0.1:{second}/api http://127.0.0.1:{first}/api"
    )


def test_each_centrifugo_asks_its_own_backend_about_subscribes(tmp_path: Path) -> None:
    """The subscribe proxy (probe H1) at the backend's port, as `make run` and `make
    run-cluster` start them: a node asking a port where nothing listens refuses every subscribe."""
    endpoint = "CENTRIFUGO_CHANNEL_PROXY_SUBSCRIBE_ENDPOINT"
    env = {**PORTS, "BACKEND_PORT": "9322", "CENTRIFUGO_HTTP_SERVER_PORT": "9324"}

    single = {service.name: service for service in services(env, tmp_path, "centrifugo")}
    cluster = {service.name: service for service in cluster_services(env, tmp_path, "centrifugo")}

    assert single["centrifugo"].env[endpoint] == "http://127.0.0.1:9322/centrifugo/subscribe"
    assert cluster["centrifugo-1"].env[endpoint] == "http://127.0.0.1:9322/centrifugo/subscribe"
    assert cluster["centrifugo-2"].env[endpoint] == "http://127.0.0.1:9323/centrifugo/subscribe"
    on_every_interface = services({**env, "BACKEND_HOST": "0.0.0.0"}, tmp_path, "centrifugo")
    assert on_every_interface[0].env[endpoint] == "http://127.0.0.1:9322/centrifugo/subscribe"


def test_a_misspelled_setting_is_named_with_what_it_likely_means(tmp_path: Path) -> None:
    """Probe: `MAX_TEXT_CHAR=100` in .env was ignored without a word (the backend reads only
    the names it knows); Centrifugo at least warned of its own."""
    env_file = tmp_path / "typo.env"
    env_file.write_text(
        "MAX_TEXT_CHAR=100\ncoalesce_window=0\nMAX_TEXT_CHARS=8000\nmax_history_turns=5\n"
        # Read by something else (httpx, Centrifugo), or nothing like ours: not ours to judge.
        "HTTPS_PROXY=http://proxy:3128\nCENTRIFUGO_CLIENT_PING_INTERVAL=10s\n"
        "CENTRIFUGO_CLIENT_ALLOWED_ORIGIN=x\n# NGINX_PORTS=1\n"
        # make run reads its own in upper case only (the backend, its own in any case).
        "nginx_port=9100\n"
    )
    assert misspelled_settings(env_file) == [
        f"{env_file} sets MAX_TEXT_CHAR, which nothing reads: did you mean MAX_TEXT_CHARS?",
        f"{env_file} sets coalesce_window, which nothing reads: did you mean COALESCE_WINDOW_MS?",
        f"{env_file} sets nginx_port, which nothing reads: did you mean NGINX_PORT?",
    ]


def test_every_setting_of_the_example_and_the_backend_is_known(tmp_path: Path) -> None:
    known = known_settings()
    assert {
        "MAX_TEXT_CHARS",
        "NGINX_TRUSTED_PROXY",
        "CLUSTER_REDIS_PORT",
        "SESSION_SECRET",
    } <= known
    env_file = tmp_path / "all.env"
    env_file.write_text("".join(f"{name}=1\n" for name in sorted(known)))
    assert misspelled_settings(env_file) == []
    assert misspelled_settings(ROOT / ".env.example") == []


def test_the_cluster_s_redis_asks_for_a_password_no_command_line_shows(tmp_path: Path) -> None:
    """An outside-in probe: the cluster's Redis had no password, so any local process read
    every user's answers (`redis-cli psubscribe '*'`) and published into their channels. It
    now has a new one each run, in a file only this user reads, and the servers get it in
    their environment; no command line (which `ps` shows to anyone) carries it."""
    state = tmp_path / "state"
    state.mkdir()
    plan = {s.name: s for s in cluster_services(PORTS, state, "centrifugo")}
    redis = plan["redis"]
    assert redis.prepare is not None
    redis.prepare()
    conf = state / "redis.conf"
    assert conf.stat().st_mode & 0o777 == 0o600
    [password] = re.fullmatch(r"requirepass ([0-9a-f]{64})\n", conf.read_text()).groups()  # type: ignore[union-attr]
    url = f"redis://:{password}@127.0.0.1:{redis.port}/0"
    assert plan["backend-1"].env["REDIS_URL"] == plan["backend-2"].env["REDIS_URL"] == url
    for node in ("centrifugo-1", "centrifugo-2"):
        assert plan[node].env["CENTRIFUGO_ENGINE_REDIS_ADDRESS"] == url
    assert str(conf) in redis.command
    assert not any(password in " ".join(s.command) for s in plan.values())
    again = {s.name: s for s in cluster_services(PORTS, state, "centrifugo")}
    assert password not in again["backend-1"].env["REDIS_URL"]  # a new one each run


@pytest.mark.parametrize(("stream", "wait"), [("120", 300), ("600", 661)])
def test_nginx_waits_on_a_chat_route_past_the_longest_answer(
    tmp_path: Path, stream: str, wait: int
) -> None:
    """An outside-in probe: nginx cut /api/chat/sync after 300 s whatever MAX_STREAM_SECONDS
    said (above 300, a long answer ended in nginx's 504 rather than the backend's answer)."""
    plan = {s.name: s for s in services({**PORTS, "MAX_STREAM_SECONDS": stream}, tmp_path, "c")}
    nginx = plan["nginx"]
    assert nginx.prepare is not None
    nginx.prepare()
    conf = (tmp_path / "nginx" / "relaychat.conf").read_text()
    chat = conf[conf.index("location ~ ^/api/chat(/sync)?$") :]
    assert f"proxy_read_timeout {wait}s;" in chat[: chat.index("}\n    }")]
