"""`make run`: Centrifugo, the backend and nginx in the foreground, until Ctrl-C or SIGTERM.
`make run-cluster` (`--cluster`): Redis, two Centrifugo nodes on Redis's engine, two backends
sharing their streams on Redis, and nginx balancing over both of each.

    python -m scripts.run [--cluster] [--env-file .env] [--state-dir .cache/run]

Settings come from the environment first, then the env file (the environment wins, as in the
backend's own settings and in docker compose). Every port and number setting, every port's
availability and the backend's settings (by its own rules) are checked before anything starts;
one run at a time uses a state dir (a lock held while it runs); "chat at ..." is printed only
once all three answer; a failed start stops the others and says which one failed. SIGINT,
SIGTERM and SIGHUP stop all three, the backend first, so that the streams it ends still get
their `done` published and carried to the browsers, and so does the end of this process's parent
(`make`, even by SIGKILL). A service that exits while running (a crash, an OOM kill) is reported
and restarted.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import difflib
import errno
import fcntl
import ipaddress
import itertools
import logging
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import IO, Annotated, Any, NoReturn

import annotated_types
from dotenv import dotenv_values
from pydantic import TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from backend.api.limits import chat_read_seconds, max_body_bytes
from backend.config import Settings, settings_refusal
from scripts.render_nginx import address_ranges, render
from scripts.system_commands import MissingCommand, require

ROOT = Path(__file__).resolve().parent.parent
READY_SECONDS = 30.0
STOP_SECONDS = 10.0
STOP_POLL_SECONDS = 0.1  # how often a stop looks for a signal while it waits for a server
RESTARTS_PER_MINUTE = 5
SAME_SIGNAL_SECONDS = 0.1
LOCK_FILE = "run.lock"
# Addresses that listen on every interface, and the names `localhost` stands for.
EVERY_INTERFACE = ("", "0.0.0.0", "::", "*")
LOCALHOST = ("localhost", "127.0.0.1", "::1")
ORIGINS = "CENTRIFUGO_CLIENT_ALLOWED_ORIGINS"


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
    host_setting: str = ""  # "" where the plan fixes the address
    # Writes the files it runs from, just before each start: planning writes nothing, so that a
    # run refused (a taken port, a state dir in use) leaves a running one's files alone.
    prepare: Callable[[], object] | None = field(default=None, compare=False)


def settings(env_file: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The env file's values overridden by the environment. An empty
    CENTRIFUGO_CLIENT_ALLOWED_ORIGINS is unset, as docker compose takes it (kept, Centrifugo
    would fall back to config.json's origins, of port 9000): the plan derives the page's own."""
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    merged = {**values, **environ}
    if not merged.get(ORIGINS, "").strip():
        merged.pop(ORIGINS, None)
    return merged


def known_settings() -> set[str]:
    """Every setting a process of `make run` reads: .env.example's (set or commented out) and
    the backend's."""
    example = (ROOT / ".env.example").read_text()
    names = set(re.findall(r"^#?[ \t]*([A-Z][A-Z0-9_]*)=", example, re.M))
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        names |= {alias} if isinstance(alias, str) else set()
    return names


def misspelled_settings(env_file: Path) -> list[str]:
    """A line for each setting of `env_file` that nothing reads but that is close to one that
    is read (`MAX_TEXT_CHAR`): the backend ignores names it does not know, so a misspelled
    setting silently kept its default. Centrifugo's own (`CENTRIFUGO_...`) are left to it: it
    warns of those it does not know, and reads many more than .env.example lists."""
    known = known_settings()
    backend = {info.validation_alias for info in Settings.model_fields.values()}
    lines = []
    for name in dotenv_values(env_file):
        upper = name.upper()
        if upper in known and name != upper and upper not in backend:
            # The backend reads its own in any case; `make run` and Centrifugo do not.
            lines.append(f"{env_file} sets {name}, which nothing reads: did you mean {upper}?")
            continue
        if upper in known or upper.startswith("CENTRIFUGO_"):
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
        if close:
            lines.append(f"{env_file} sets {name}, which nothing reads: did you mean {close[0]}?")
    return lines


def port_setting(env: Mapping[str, str], name: str, default: int, *, pair: bool = False) -> int:
    """A port setting (unset or empty: `default`), or StartFailed saying what it should be:
    caught here, a bad one was a traceback (`int()`), or a server failing later. `pair`: the
    port after it is taken too (the cluster's second of a kind)."""
    value = env.get(name) or str(default)
    highest = 65534 if pair else 65535
    if not re.fullmatch(r"[0-9]{1,5}", value) or not 1 <= int(value) <= highest:
        second = " (the second of its kind takes the next one)" if pair else ""
        raise StartFailed(f"{name} is {value!r}: a port number, 1-{highest}{second}")
    return int(value)


def setting_field(name: str) -> FieldInfo:
    """The backend's Settings field read from the variable `name`."""
    (info,) = [f for f in Settings.model_fields.values() if f.validation_alias == name]
    return info


def backend_setting(env: Mapping[str, str], name: str) -> float:
    """A number setting the backend reads too, by the backend's own rules (its Settings
    field's type and bounds, so that the two cannot disagree), unset or empty its default;
    StartFailed saying what it should be."""
    info = setting_field(name)
    value = env.get(name) or str(info.default)
    rule: Any = Annotated[(info.annotation, *info.metadata)]  # the field's type and bounds
    try:
        number: float = TypeAdapter(rule).validate_python(value)
    except ValidationError:
        kind = "a whole number" if info.annotation is int else "a number"
        raise StartFailed(f"{name} is {value!r}: {kind}{bounds(info.metadata)}") from None
    return number


def bounds(metadata: list[object]) -> str:
    """A field's bounds in words: ", at least 1"."""
    words = {"ge": "at least", "gt": "more than", "le": "at most", "lt": "less than"}
    return "".join(
        f", {words[name]} {getattr(bound, name)}"
        for bound in metadata
        if isinstance(bound, annotated_types.BaseMetadata)
        for name in words
        if hasattr(bound, name)
    )


def host_setting(env: Mapping[str, str], name: str, default: str) -> str:
    """An address setting (unset or empty: `default`), an IPv6 one without the brackets of its
    URL form (`[::1]`), which the servers and the socket calls take bare."""
    host = env.get(name) or default
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def in_url(host: str) -> str:
    """`host` in a URL: an IPv6 address in brackets, in its canonical form (as a browser
    writes it in the Origin header)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host.lower()
    return f"[{address}]" if address.version == 6 else str(address)


def local_address(host: str) -> str:
    """Where this machine reaches a server listening on `host`: one listening on every
    interface, on loopback (an IPv6 address in brackets, for a URL). On `::`, the IPv6 one:
    nginx listens there on IPv6 only."""
    if host in EVERY_INTERFACE:
        return "[::1]" if host == "::" else "127.0.0.1"
    return in_url(host)


def page_host(host: str) -> str:
    """The host of the page's URL when nginx listens on `host`: `localhost` where that reaches
    it (on loopback, or on every interface), else the address itself."""
    if host in EVERY_INTERFACE or in_url(host) in (in_url(name) for name in LOCALHOST):
        return "localhost"
    return in_url(host)


def allowed_origins(env: Mapping[str, str], host: str, port: int) -> str:
    """The origins whose pages may open a WebSocket: as set, or the page's own, under
    `localhost` and 127.0.0.1 and, on one other address (NGINX_HOST=192.0.2.2), under that
    one (without it, Centrifugo refused the page's WebSocket there)."""
    if ORIGINS in env:
        return env[ORIGINS]
    origins = [f"http://localhost:{port}", f"http://127.0.0.1:{port}"]
    if page_host(host) != "localhost":
        origins.append(f"http://{page_host(host)}:{port}")
    return " ".join(origins)


def chat_at(nginx: Service, env: Mapping[str, str]) -> str:
    """The line that says where the page is reached: where NGINX_HOST listens (a hard-coded
    localhost was wrong for one other address); on every interface, the local URL, and how
    other machines reach it."""
    line = f"chat at http://{page_host(nginx.host)}:{nginx.port} (Ctrl-C stops everything)"
    if nginx.host not in EVERY_INTERFACE:
        return line
    name = f"http://{socket.gethostname()}:{nginx.port}"
    line += f"; other machines reach it under this machine's name ({name})"
    if ORIGINS not in env:
        line += f", which {ORIGINS} must then list"
    return line


def services(env: Mapping[str, str], state: Path, centrifugo: str) -> list[Service]:
    """The three processes, in the order they start; StartFailed for a bad setting. Writes
    nothing (each service's `prepare` does, as it starts)."""
    centrifugo_port = port_setting(env, "CENTRIFUGO_HTTP_SERVER_PORT", 8000)
    backend_host = host_setting(env, "BACKEND_HOST", "127.0.0.1")
    backend_port = port_setting(env, "BACKEND_PORT", 5000)
    nginx = nginx_service(
        env, state, [f"{local_address(backend_host)}:{backend_port}"], [centrifugo_port]
    )
    centrifugo_host = host_setting(env, "CENTRIFUGO_HTTP_SERVER_ADDRESS", "127.0.0.1")
    if centrifugo_host not in ("127.0.0.1", "localhost", *EVERY_INTERFACE[:2]):
        # nginx and the backend reach it at 127.0.0.1 here: passed the checks, another address
        # was probed ready and then reached by neither (review).
        raise StartFailed(
            f"CENTRIFUGO_HTTP_SERVER_ADDRESS is {centrifugo_host!r}: under `make run` nginx and "
            "the backend reach Centrifugo at 127.0.0.1, so it listens there (127.0.0.1, the "
            "default) or on every IPv4 interface (0.0.0.0)"
        )
    return [
        centrifugo_service(
            "centrifugo",
            centrifugo,
            state,
            centrifugo_port,
            centrifugo_host,
            {
                ORIGINS: allowed_origins(env, nginx.host, nginx.port),
                **subscribe_proxy(backend_host, backend_port),
            },
            host_setting="CENTRIFUGO_HTTP_SERVER_ADDRESS",
        ),
        backend_service("backend", backend_port, backend_host, host_setting="BACKEND_HOST"),
        nginx,
    ]


def cluster_services(env: Mapping[str, str], state: Path, centrifugo: str) -> list[Service]:
    """Redis, two Centrifugo nodes on it, two backends sharing their streams on it, and nginx
    balancing over both of each. Ports: CLUSTER_REDIS_PORT (6379), and each single-run port
    with the next one for the second of a kind."""
    redis_port = port_setting(env, "CLUSTER_REDIS_PORT", 6379)
    # Redis holds every stream (Centrifugo's channels and history, the backends' registry): with
    # no password any local process read and wrote every user's answers (an outside-in probe:
    # `redis-cli psubscribe '*'`, and a forged chunk published into another user's channel).
    # A new one each run, in a file only this user reads (not on a command line, which `ps`
    # shows to anyone), and in the URLs the servers are given in their environment.
    password = secrets.token_hex(32)
    redis_url = f"redis://:{password}@127.0.0.1:{redis_port}/0"
    redis_conf = state / "redis.conf"
    first_node = port_setting(env, "CENTRIFUGO_HTTP_SERVER_PORT", 8000, pair=True)
    first_backend = port_setting(env, "BACKEND_PORT", 5000, pair=True)
    nodes = [first_node, first_node + 1]
    backends = [first_backend, first_backend + 1]
    redis = Service(
        "redis",
        ["redis-server", str(redis_conf), "--port", str(redis_port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(state)],
        f"redis://127.0.0.1:{redis_port}",
        redis_port,
        "127.0.0.1",
        "CLUSTER_REDIS_PORT",
        prepare=partial(write_private, redis_conf, f"requirepass {password}\n"),
    )  # fmt: skip
    nginx = nginx_service(env, state, [f"127.0.0.1:{port}" for port in backends], nodes)
    engine = {
        "CENTRIFUGO_ENGINE_TYPE": "redis",
        "CENTRIFUGO_ENGINE_REDIS_ADDRESS": redis_url,
        ORIGINS: allowed_origins(env, nginx.host, nginx.port),
    }
    # Each node asks its own backend (they share the streams registry on Redis).
    centrifugos = [
        centrifugo_service(
            f"centrifugo-{n}",
            centrifugo,
            state,
            port,
            "127.0.0.1",
            {**engine, **subscribe_proxy("127.0.0.1", backend)},
        )
        for n, (port, backend) in enumerate(zip(nodes, backends, strict=True), 1)
    ]
    # Each backend publishes through its own node, and through the other while its own fails.
    backend_services = [
        backend_service(
            f"backend-{n}",
            port,
            "127.0.0.1",
            {
                "CENTRIFUGO_HTTP_SERVER_PORT": str(node),
                "RELAY_CENTRIFUGO_API_URL": " ".join(
                    f"http://127.0.0.1:{each}/api"
                    for each in sorted(nodes, key=lambda other: other != node)
                ),
                "REDIS_URL": redis_url,
            },
        )
        for n, (port, node) in enumerate(zip(backends, nodes, strict=True), 1)
    ]
    return [redis, *centrifugos, *backend_services, nginx]


def subscribe_proxy(backend_host: str, backend_port: int) -> dict[str, str]:
    """Where Centrifugo asks the backend about each subscribe (centrifugo/config.json
    `channel.proxy.subscribe`; backend/centrifugo/subscriptions.py)."""
    url = f"http://{local_address(backend_host)}:{backend_port}/centrifugo/subscribe"
    return {"CENTRIFUGO_CHANNEL_PROXY_SUBSCRIBE_ENDPOINT": url}


def centrifugo_service(
    name: str,
    binary: str,
    state: Path,
    port: int,
    host: str,
    env: Mapping[str, str] | None = None,
    host_setting: str = "",
) -> Service:
    """A Centrifugo node on `host`:`port` (given to it, over what the environment says: the
    plan's checks and probes are about where it listens)."""
    launch = [sys.executable, str(ROOT / "scripts" / "centrifugo_launch.py"), binary]
    config = [str(ROOT / "centrifugo" / "config.json"), f"--out={state / name}"]
    listen = {"CENTRIFUGO_HTTP_SERVER_ADDRESS": host, "CENTRIFUGO_HTTP_SERVER_PORT": str(port)}
    return Service(
        name,
        [*launch, *config],
        f"http://{local_address(host)}:{port}/health",
        port,
        host,
        "CENTRIFUGO_HTTP_SERVER_PORT",
        {**(env or {}), **listen},
        host_setting,
    )


def backend_service(
    name: str,
    port: int,
    host: str,
    env: Mapping[str, str] | None = None,
    host_setting: str = "",
) -> Service:
    """A backend on `host`:`port` (given to it, over what the environment says)."""
    return Service(
        name,
        [sys.executable, "-m", "backend"],
        f"http://{local_address(host)}:{port}/api/health",
        port,
        host,
        "BACKEND_PORT",
        {**(env or {}), "BACKEND_HOST": host, "BACKEND_PORT": str(port)},
        host_setting,
    )


def nginx_service(
    env: Mapping[str, str], state: Path, backends: list[str], nodes: list[int]
) -> Service:
    """nginx on NGINX_HOST:NGINX_PORT in front of `backends` and the Centrifugo `nodes`; its
    config is rendered as it starts (`prepare`), into the main config named here."""
    port = port_setting(env, "NGINX_PORT", 9000)
    host = host_setting(env, "NGINX_HOST", "127.0.0.1")
    out = state / "nginx"
    write_config = partial(
        render,
        out,
        port,
        ",".join(backends),
        ",".join(f"127.0.0.1:{node}" for node in nodes),
        ROOT / "frontend" / "dist",
        body_limit(env),
        in_url(host),  # nginx takes an IPv6 address in brackets: listen [::1]:9000
        trusted_proxy(env),
        chat_read_seconds(backend_setting(env, "MAX_STREAM_SECONDS")),
    )
    return Service(
        "nginx",
        ["nginx", "-p", str(out), "-c", str(out / "nginx.conf"), "-g", "daemon off;"],
        f"http://{local_address(host)}:{port}/",
        port,
        host,
        "NGINX_PORT",
        host_setting="NGINX_HOST",
        prepare=write_config,
    )


# A proxy on this machine, unless NGINX_TRUSTED_PROXY says otherwise: over either loopback (one
# reaching nginx at `localhost` or [::1] comes from ::1; trusting 127.0.0.1 alone, every client
# had that proxy's address again, and one rate for all).
LOOPBACKS = "127.0.0.1,::1"


def trusted_proxy(env: Mapping[str, str]) -> str:
    """NGINX_TRUSTED_PROXY: the addresses or CIDR ranges (comma-separated) of the proxies in
    front of nginx whose X-Forwarded-For names the client; both loopbacks unset. As the nginx
    image takes it (nginx/trusted-proxy.envsh). StartFailed for anything else."""
    value = env.get("NGINX_TRUSTED_PROXY", "").strip()
    if not value:
        return LOOPBACKS
    try:
        items = address_ranges(value)
    except ValueError:
        raise StartFailed(
            f"NGINX_TRUSTED_PROXY is {value!r}: an address or CIDR range (127.0.0.1, "
            "10.0.0.0/8), or several separated by commas: the proxies in front of nginx"
        ) from None
    return ",".join(items)


def body_limit(env: Mapping[str, str]) -> int:
    """The backend's body limit, for nginx: from the same settings, with the same defaults."""
    return max_body_bytes(
        int(backend_setting(env, "MAX_TEXT_CHARS")),
        int(backend_setting(env, "MAX_HISTORY_CHARS")),
        int(backend_setting(env, "MAX_HISTORY_TURNS")),
    )


def check_backend_settings(plan: list[Service], env: Mapping[str, str], state: Path) -> None:
    """The backend's settings as each backend will read them, by the backend's own rules: a
    refusal before anything starts (it came after Centrifugo had started, from the backend)."""
    for service in plan:
        if service.name.startswith("backend"):
            refuse_bad_backend_settings({**env, **service.env}, state)


def refuse_bad_backend_settings(values: Mapping[str, str], state: Path) -> None:
    """StartFailed with every reason the backend would refuse `values` for. As the backend
    reads them: its environment, then the .env of its working directory (the state dir), not
    this process's (model_validate read the checkout's)."""
    given: dict[str, Any] = dict(values)
    logging.disable(logging.WARNING)  # its warnings (weak secrets) are the backend's to say
    try:
        Settings(_env_file=state / ".env", **given)
    except ValidationError as error:
        raise StartFailed(settings_refusal(error)) from None
    finally:
        logging.disable(logging.NOTSET)


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
    """Whether `service` can listen where it is planned to, by binding there with the address
    family of its host (an IPv4 socket took `::1` for a port in use), at every address a name
    stands for (nginx listens at each: `localhost` may be 127.0.0.1 and ::1); StartFailed saying
    why not."""
    host = "0.0.0.0" if service.host in ("", "*") else service.host  # nginx's `*`: IPv4's
    try:
        found = socket.getaddrinfo(
            host, service.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        for family, kind, proto, _, address in dict.fromkeys(found):
            with socket.socket(family, kind, proto) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
    except OSError as error:
        raise refusal(service, error) from error


def refusal(service: Service, error: OSError) -> StartFailed:
    """Why `service` cannot listen, by the cause: a port in use (and who holds it), one that
    needs root, or an address this machine cannot listen on (unknown, not one of its own, or
    of a family it does not support)."""
    where = f"port {service.port} ({service.name}, {service.port_setting})"
    if error.errno == errno.EADDRINUSE:
        return StartFailed(
            f"{where} is not free: {error.strerror}; {port_holder(service.port)}. Stop it, or "
            f"set {service.port_setting} to another port."
        )
    if error.errno == errno.EACCES:
        return StartFailed(
            f"{where} cannot be listened on: {error.strerror} (a port below 1024 needs root). "
            f"Set {service.port_setting} to another port."
        )
    what = service.host_setting or f"{service.name}'s address"
    why = error.strerror or str(error)
    if error.errno == errno.EADDRNOTAVAIL:
        why += " (no interface of this machine has that address)"
    return StartFailed(f"{what} {service.host!r} cannot be listened on: {why}")


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


def stop_with_parent() -> None:
    """Under `make`, this supervisor gets SIGTERM (and stops everything) when make dies: a
    SIGKILL to make alone reaches none of its children, and left the supervisor and every server
    running, orphaned. A make that died before this was set counts too. Started otherwise (from
    a shell, `nohup`), it outlives its parent as before."""
    if sys.platform != "linux":
        return
    parent = os.getppid()
    try:
        under_make = Path(f"/proc/{parent}/comm").read_text().strip() == "make"
    except OSError:
        return
    if not under_make:
        return
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


@contextlib.contextmanager
def sole_run(state: Path) -> Iterator[None]:
    """Holds `state` for this run alone: an exclusive lock on its LOCK_FILE, released when the
    run ends or its process dies (the kernel's), the holder's pid in it. A second run of the
    same checkout rewrote the first's nginx config (on another port) before its own port
    checks failed, and the first restarted a crashed nginx from it; now it is refused, having
    written nothing."""
    state.mkdir(parents=True, exist_ok=True)
    lock = os.open(state / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(lock, 32).decode(errors="replace").strip()
            raise StartFailed(in_use(state, holder)) from None
        os.ftruncate(lock, 0)
        os.write(lock, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(lock)


def in_use(state: Path, holder: str) -> str:
    """The refusal of a state dir in use: whose (its pid, unless the holder has not written it
    yet), and the two ways on: stop that run, or run this one beside it."""
    who = f"another `make run` (pid {holder})" if holder.isdigit() else "another `make run`"
    return (
        f"the state dir {state} is in use by {who}: stop that one, or give this one a state "
        f"dir of its own (make run RUN_STATE_DIR=.cache/run-2; --state-dir)"
    )


# One service's output line at a time, whichever thread copies it.
_OUTPUT = threading.Lock()


def relay_output(source: IO[bytes], prefix: bytes, sink: IO[bytes]) -> None:
    """Copies a service's output to `sink` line by line, each led by `prefix` (its name, as
    docker compose does): with two backends and two Centrifugo nodes, whose line is whose.
    Returns when every process holding the output has closed it."""
    with source:
        for line in source:
            with _OUTPUT:
                try:
                    sink.write(prefix + (line if line.endswith(b"\n") else line + b"\n"))
                    sink.flush()
                except OSError:
                    # The terminal or file cannot take it (hung up, disk full, EAGAIN): the line
                    # is dropped, the pipe kept drained; closing it would kill Centrifugo (SIGPIPE)
                    # and silence the backend for the rest of the run.
                    pass


class Supervisor:
    def __init__(
        self,
        env: Mapping[str, str],
        state: Path,
        grace: float = 5.0,
        name_width: int = 0,
        drain: float = 0.0,
        signals: StopSignals | None = None,
    ) -> None:
        self.env = dict(env)
        self.state = state
        self.grace = grace  # SHUTDOWN_GRACE_SECONDS, checked before anything starts
        self.drain = drain  # SHUTDOWN_DRAIN_SECONDS, the same
        self.signals = signals  # the stop's signals, counted while it runs
        self._signals_before = 0
        self._hurried = False  # a second signal came while the backends let answers finish
        self._killing = False  # one more: what still runs is killed
        self.name_width = name_width  # the longest service name: the output's names line up
        self.running: list[tuple[Service, subprocess.Popen[bytes]]] = []
        self._copiers: dict[int, threading.Thread] = {}  # by pid

    def command_of(self, service: Service) -> list[str]:
        """`service`'s command with the program's absolute path: looked up on the PATH it is
        given (as Popen would, but from here: it runs in the state dir), then in the sbin
        folders (nginx is /usr/sbin/nginx, off a user's PATH); StartFailed if it is nowhere."""
        path = os.get_exec_path({**self.env, **service.env})
        try:
            program = os.path.abspath(require(service.command[0], path))
        except MissingCommand as missing:
            raise StartFailed(f"{service.name} cannot start: {missing}") from None
        return [program, *service.command[1:]]

    def start(self, service: Service) -> None:
        env = {**self.env, **service.env}
        command = self.command_of(service)
        if service.prepare is not None:
            service.prepare()
        # A session of its own: Ctrl-C in the terminal reaches the service only through stop(),
        # in the order that keeps streams' endings deliverable.
        process = subprocess.Popen(
            command,
            env=env,
            # Not the checkout: the backend would read the checkout's .env for whatever the
            # environment leaves out, even when another env file was asked for.
            cwd=self.state,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        prefix = f"{service.name:<{self.name_width}} | ".encode()
        copier = threading.Thread(
            target=relay_output,
            args=(process.stdout, prefix, sys.stderr.buffer),
            name=f"{service.name} output",
            daemon=True,
        )
        copier.start()
        self._copiers[process.pid] = copier
        self.running.append((service, process))
        deadline = time.monotonic() + READY_SECONDS
        while not _answers(service.ready_url):
            if process.poll() is not None:
                self._output_of(process)  # its last lines (why) before the message below
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
        keeps failing (more than RESTARTS_PER_MINUTE exits of its own a minute) raises
        StartFailed; each service is counted on its own (one count for all gave up on a
        cluster after one incident that crashed six different processes once each)."""
        restarts: dict[str, list[float]] = {}
        while True:
            service, code = self.wait_any()
            now = time.monotonic()
            recent = [at for at in restarts.get(service.name, []) if now - at < 60] + [now]
            restarts[service.name] = recent
            if len(recent) > RESTARTS_PER_MINUTE:
                raise StartFailed(f"{service.name} keeps exiting (code {code}); giving up")
            exited = [p for s, p in self.running if s is service]
            self.running = [(s, p) for s, p in self.running if s is not service]
            for process in exited:
                end_group(process.pid)
                self._output_of(process)
            say(f"{service.name} exited with code {code}; restarting it")
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
        """Stops the backends first (all at once: each gives its running answers up to
        SHUTDOWN_DRAIN_SECONDS to finish, then up to SHUTDOWN_GRACE_SECONDS to publish the
        `done` of those it ended), then nginx, then Centrifugo (then Redis). A second signal
        hurries: the backends end their answers at once (without answers to let finish: what
        is being stopped is killed); one more kills everything still running. Signals are
        counted meanwhile, not raised: one raised in the middle of the stop left servers
        running (a traceback)."""
        order = {"backend": 0, "nginx": 1, "centrifugo": 2, "redis": 3}

        def kind(item: tuple[Service, subprocess.Popen[bytes]]) -> int:
            return order[item[0].name.partition("-")[0]]

        if self.signals is not None:
            self.signals.raising = False
            self._signals_before = self.signals.count
        for _, group in itertools.groupby(sorted(self.running, key=kind), key=kind):
            members = list(group)
            for _, process in members:
                if process.poll() is None:
                    process.terminate()
            for service, process in members:
                self._wait_stopped(service, process, members)
                self._output_of(process)
        self.running.clear()

    def _more_signals(self) -> int:
        """Signals since the one that started the stop."""
        return 0 if self.signals is None else self.signals.count - self._signals_before

    def _wait_stopped(
        self,
        service: Service,
        process: subprocess.Popen[bytes],
        group: list[tuple[Service, subprocess.Popen[bytes]]],
    ) -> None:
        """Until `process` has stopped; a second signal tells the backends of its `group` to
        end their answers now (a server without answers to finish is killed), a further one
        (or its time running out) kills it."""
        if process.poll() is not None:
            return
        drain = self._drain(service)
        deadline = time.monotonic() + STOP_SECONDS + self._grace(service)
        deadline += 0 if self._hurried else drain
        while True:
            more = self._more_signals()
            if more >= (2 if self._hurried else 1) and not (drain and not self._hurried):
                self._killing = True
            if self._killing:
                say(f"killing {service.name}")
                break
            if more >= 1 and drain and not self._hurried:
                self._hurry(group)
                deadline = time.monotonic() + STOP_SECONDS + self._grace(service)
            try:
                process.wait(STOP_POLL_SECONDS)
                return
            except subprocess.TimeoutExpired:
                if time.monotonic() > deadline:
                    say(f"{service.name} did not stop in time; killing it")
                    break
        process.kill()
        process.wait()

    def _hurry(self, group: list[tuple[Service, subprocess.Popen[bytes]]]) -> None:
        """A second SIGTERM to the backends of `group`: they end their answers now."""
        self._hurried = True
        say("ending the running answers now; signal once more to kill everything")
        for _, process in group:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def _output_of(self, process: subprocess.Popen[bytes]) -> None:
        """Until the ended `process`'s last lines (how it ended) are out, before whatever is
        said next; a worker it left holding its output does not hold this up for long."""
        copier = self._copiers.pop(process.pid, None)
        if copier is not None:
            copier.join(1.0)

    def _grace(self, service: Service) -> float:
        return self.grace if service.name.startswith("backend") else 0.0

    def _drain(self, service: Service) -> float:
        return self.drain if service.name.startswith("backend") else 0.0


def _answers(url: str) -> bool:
    if url.startswith("redis://"):
        return _pongs(url)
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _pongs(url: str) -> bool:
    """Whether the Redis at `url` (redis://host:port) answers PING (asking for its password
    is an answer too: it is up)."""
    host, _, port = url.removeprefix("redis://").partition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def write_private(path: Path, text: str) -> None:
    """`text` into `path`, readable and writable by this user only (from its creation on)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


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
        self.count = 0  # requests, a copy within SAME_SIGNAL_SECONDS not counted
        self.raising = True  # until the stop begins: then only counted (Supervisor.stop)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        now = self._clock()
        last, self._last = self._last, now  # first: a signal handled in between sees it
        if now - last < SAME_SIGNAL_SECONDS:
            return
        self.count += 1
        if self.raising:
            raise Stop(signal.Signals(signum).name)


def stopping_order(supervisor: Supervisor | None) -> str:
    """What a stop does, in the order it does it."""
    names = {"backend": "the backend", "nginx": "nginx", "centrifugo": "Centrifugo"}
    names["redis"] = "Redis"
    running = [] if supervisor is None else [s.name for s, _ in supervisor.running]
    several = sum(name.startswith("backend") for name in running) > 1
    if several:
        names.update(backend="the backends", centrifugo="the Centrifugo nodes")
    drain = 0.0 if supervisor is None else supervisor.drain
    if drain > 0:
        names["backend"] += (
            f" ({'they let' if several else 'it lets'} running answers finish, up to {drain:g} s;"
            " Ctrl-C again ends them now, a third time kills everything)"
        )
    kinds = [kind for kind in names if any(name.startswith(kind) for name in running)]
    kinds = kinds or ["backend", "nginx", "centrifugo"]  # before anything started
    return "stopping " + ", then ".join(names[kind] for kind in kinds)


def centrifugo_binary() -> str:
    found = subprocess.run([str(ROOT / "scripts" / "centrifugo.sh")], stdout=subprocess.PIPE)
    if found.returncode != 0:
        raise StartFailed("Centrifugo could not be found or built (see above)")
    return found.stdout.decode().strip()


def run(env: Mapping[str, str], state: Path, *, cluster: bool = False) -> int:
    """The settings checked, then the state dir taken (nothing is written into it before),
    the ports checked, and the servers started and kept running; the servers stopped, then
    the state dir let go."""
    handler = StopSignals()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)
    supervisor: Supervisor | None = None
    with contextlib.ExitStack() as held:  # left after the messages below: stops, then unlocks
        try:
            stop_with_parent()
            # First, so that every reason comes at once: planning reads a few of the backend's
            # settings (the body limit, the shutdown grace) one at a time. Where the backends
            # listen and reach Centrifugo, planning checks and names in its own words, and the
            # cluster gives its backends a REDIS_URL of its own (review: one in the environment
            # was refused): those at their defaults here (not left out: the backend's Settings
            # would read them from the environment).
            planned = ["BACKEND_HOST", "BACKEND_PORT", "CENTRIFUGO_HTTP_SERVER_PORT"]
            planned += ["REDIS_URL"] if cluster else []
            defaults = {name: str(setting_field(name).default or "") for name in planned}
            refuse_bad_backend_settings({**env, **defaults}, state)
            plan = (cluster_services if cluster else services)(env, state, centrifugo_binary())
            check_distinct_ports(plan)
            check_backend_settings(plan, env, state)
            supervisor = Supervisor(
                env,
                state,
                backend_setting(env, "SHUTDOWN_GRACE_SECONDS"),
                max(len(service.name) for service in plan),
                backend_setting(env, "SHUTDOWN_DRAIN_SECONDS"),
                handler,
            )
            for service in plan:  # all there, before any starts
                supervisor.command_of(service)
            held.enter_context(sole_run(state))
            held.callback(supervisor.stop)
            for service in plan:
                check_port(service)
            for service in plan:
                supervisor.start(service)
            (nginx,) = [service for service in plan if service.name == "nginx"]
            say(chat_at(nginx, env))
            supervisor.keep_running()
        except StartFailed as error:
            say(str(error))
            return 1
        except Stop as stop:
            say(f"{stop} received; {stopping_order(supervisor)}")
            return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cluster", action="store_true", help="Redis, 2 Centrifugo, 2 backends")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".cache" / "run")
    args = parser.parse_args()
    env = settings(args.env_file, os.environ)
    for line in misspelled_settings(args.env_file):
        say(f"warning: {line}")
    sys.exit(run(env, args.state_dir.resolve(), cluster=args.cluster))


if __name__ == "__main__":
    main()
