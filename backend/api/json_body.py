"""Request bodies read as the JSON RFC 8259 defines, by orjson: UTF-8 only, and no `NaN`,
`Infinity`, lone surrogate or number too large for a double (an integer beyond 64 bits is
read as a double: no field of a request is a number).

FastAPI reads a body with the standard library's `json.loads`, which guesses UTF-16 or UTF-32
from the bytes and takes `NaN` and `Infinity`: a UTF-16 prompt was started (202) while one in
Latin-1 was refused as "not UTF-8" (a security probe). A leading UTF-8 byte order mark is still
passed over, as it was (RFC 8259 8.1 allows it)."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute


def loads_body(body: bytes) -> Any:
    """The JSON value of a request body. A body that is not UTF-8 raises UnicodeDecodeError
    (answered as "not UTF-8", api/errors.py); any other fault orjson's JSONDecodeError, which
    is the standard library's and is answered as invalid JSON."""
    marked = body.startswith(codecs.BOM_UTF8)
    text = body[len(codecs.BOM_UTF8) :] if marked else body
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        text.decode("utf-8")  # the fault said as it is, when it is the encoding
        if not marked:
            raise
        # Where it stops, counted in what the client sent (the mark included).
        raise orjson.JSONDecodeError(exc.msg, exc.doc, exc.pos + 1) from None


class _JSONBodyRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_body(await self.body())
        return self._json


class JSONBodyRoute(APIRoute):
    """A route whose body is read by `loads_body`: `APIRouter(route_class=JSONBodyRoute)` in
    the modules whose routes take one (chat, execute; tests/unit/test_routes.py checks every
    route with a body in the schema)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_json(request: Request) -> Response:
            return await handler(_JSONBodyRequest(request.scope, request.receive))

        return strict_json
