"""A server that does nothing but answer: the floor under bench/execute_probe.py's figures.

Every POST is answered at once with 202 and a small JSON body, on the connection it came on (kept
alive unless the client closes it): no framework, no event loop, no work, a thread for each
connection, blocked in the kernel until a request arrives. Probed the same way as the backend while
a workload runs, it shows what the machine adds at the least (the probe's and the server's
wake-ups on cores the workload keeps busy): an idle process is woken ahead of busy ones, so a
server that is itself busy waits longer than this even when its design is not the cause.

    python -m bench.floor_server --port 8123
"""

from __future__ import annotations

import argparse
import socketserver

BODY = b'{"channel": "floor"}'
RESPONSE = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


class Answer(socketserver.StreamRequestHandler):
    disable_nagle_algorithm = True  # as uvicorn's connections

    def handle(self) -> None:
        while True:
            length = 0
            line = self.rfile.readline()
            if not line:
                return
            while line not in (b"\r\n", b"\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
                line = self.rfile.readline()
            self.rfile.read(length)
            self.wfile.write(RESPONSE)
            self.wfile.flush()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with Server(("127.0.0.1", args.port), Answer) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
