"""What one more user waits for `POST /api/execute`'s 202 while a workload's streams run,
measured from a process of its own.

The load generator's event loop is busy with the subscribers' publications (at 2,000 streams it
takes tens of thousands a second): a probe on that loop counts, on top of the server's answer,
however long the loop takes to get back to it. Here each execute is a blocking socket in an
otherwise idle process, which the kernel wakes as soon as the answer arrives. Each probe's
stream is cancelled at once (not timed), so the workload's load stays as it was. Executes go
alternately on a new connection and on a kept-alive one: a new connection costs the server's
event loop more turns (accept, then the first read) before the request is even parsed.

With `--floor-port`, each execute is followed by the same request to bench/floor_server.py, a
server that does nothing but answer: what it takes is what the machine adds under the workload
(the probe's own wake-up included), which no server on it avoids.

    python -m bench.execute_probe --port 8000 --cookie <session> --user <user> --most 20

Waits for a line on stdin, then probes until stdin closes (or `--most` of each kind). Prints
the latencies in seconds of the executes, as JSON: {"new": [...], "kept_alive": [...]}, and
with a floor server "floor_new" and "floor_kept_alive" too. A probe that fails (refused, reset,
timed out, or answered anything but 202) fails the whole process: a latency left out would
flatter the rest.
"""

from __future__ import annotations

import argparse
import json
import secrets
import select
import socket
import sys
import time

from backend.api.session import SESSION_COOKIE

HOST = "127.0.0.1"
TIMEOUT = 30.0


def request(path: str, body: bytes, cookie: str, port: int, *, close: bool) -> bytes:
    connection = "close" if close else "keep-alive"
    return (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Content-Type: application/json\r\nAccept: application/json\r\n"
        f"Content-Length: {len(body)}\r\nCookie: {SESSION_COOKIE}={cookie}\r\n"
        f"Connection: {connection}\r\n\r\n"
    ).encode() + body


def response_status(sock: socket.socket) -> int:
    """Read one whole response (head and a Content-Length body); its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("closed before the response's head")
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("closed within the response's body")
        body += more
    return int(head.split(b" ", 2)[1])


class Prober:
    """Executes one at a time, alternately on a new connection each (what a client without
    a proxy in front opens) and on one kept-alive connection (what nginx keeps to the backend,
    `keepalive` in nginx/relaychat.conf.template)."""

    def __init__(self, port: int, cookie: str, user: str, *, label: str = "") -> None:
        self.port, self.cookie, self.user, self.label = port, cookie, user, label
        self.kept = socket.create_connection((HOST, port), timeout=TIMEOUT)
        self.latencies: dict[str, list[float]] = {f"{label}new": [], f"{label}kept_alive": []}
        self.probe("kept_alive", timed=False)  # the connection is open and has served one

    def post(self, path: str, body: bytes, how: str) -> int:
        if how == "kept_alive":
            self.kept.sendall(request(path, body, self.cookie, self.port, close=False))
            return response_status(self.kept)
        with socket.create_connection((HOST, self.port), timeout=TIMEOUT) as sock:
            sock.sendall(request(path, body, self.cookie, self.port, close=True))
            return response_status(sock)

    def probe(self, how: str, *, timed: bool = True) -> None:
        channel = f"stream:{secrets.token_hex(8)}#{self.user}"
        body = json.dumps({"text": "explain", "channel": channel}).encode()
        sent = time.perf_counter()
        status = self.post("/api/execute", body, how)
        if status != 202:  # a latency left out would flatter the rest
            raise SystemExit(f"bench.execute_probe: an execute ({how}) was answered {status}")
        if timed:
            self.latencies[f"{self.label}{how}"].append(time.perf_counter() - sent)
        self.post("/api/cancel", json.dumps({"channel": channel}).encode(), how)


def told_to_stop(wait: float) -> bool:
    """Wait up to `wait` seconds for stdin to close (or to say anything)."""
    readable, _, _ = select.select([sys.stdin], [], [], wait)
    return bool(readable)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cookie", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--most", type=int, default=20, help="executes of each kind at most")
    parser.add_argument("--gap", type=float, default=0.025, help="seconds between probes")
    parser.add_argument("--floor-port", type=int, help="bench/floor_server.py's, probed too")
    args = parser.parse_args()
    latencies: dict[str, list[float]] = {"new": [], "kept_alive": []}
    # Started early (an interpreter takes a while): probes once told, until stdin closes.
    if sys.stdin.readline():
        prober = Prober(args.port, args.cookie, args.user)
        probers = [prober]
        if args.floor_port is not None:
            probers.append(Prober(args.floor_port, args.cookie, args.user, label="floor_"))
        latencies = {k: v for p in probers for k, v in p.latencies.items()}
        for _ in range(args.most):
            for how in ("new", "kept_alive"):
                for each in probers:  # the floor right after: under the same load
                    each.probe(how)
                if told_to_stop(args.gap):
                    break
            else:
                continue
            break
    json.dump(latencies, sys.stdout)


if __name__ == "__main__":
    main()
