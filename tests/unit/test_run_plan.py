"""`make run`'s plan of servers: ports that clash are an error before anything starts."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from scripts.run import (
    SAME_SIGNAL_SECONDS,
    StartFailed,
    Stop,
    StopSignals,
    check_distinct_ports,
    cluster_services,
    end_group,
    services,
)

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
     ("::1", "[::1]")],
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
