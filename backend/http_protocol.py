"""The HTTP/1.1 parser the backend serves with: uvicorn's httptools one, except that a request
it cannot parse is refused with the JSON every other error has, not uvicorn's plain text.

httptools refuses a control character in a header value, a method it does not know, or a raw
byte beyond ASCII in the request target. nginx passes all three on (it checks the target only
where nginx/relaychat.conf.template says so), so uvicorn's `Invalid HTTP request received.` in
text/plain reached the client through it (a security probe), as it does anyone who serves the
backend behind a proxy of their own."""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

UNREADABLE = (
    "the request could not be read: it is not valid HTTP/1.1 (its request line, a header, or "
    "the framing of its body)"
)
_BODY = json.dumps({"detail": UNREADABLE}).encode("ascii")


class JSONRefusalProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        """uvicorn's own, with a JSON body: the connection closes after it (the parser cannot
        tell where the next request would begin)."""
        head = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(_BODY)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
        ]
        self.transport.write(b"".join(head) + _BODY)
        self.transport.close()
