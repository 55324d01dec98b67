"""The baseline the relay is measured against: the simplest way to stream a model's answer, a
FastAPI `StreamingResponse` of Server-Sent Events, with nothing between the model and the socket.

It streams the same simulated answers as the backend (backend.llm.simulated: the same tokens,
paced by the same code at D ms a token) as `data: {"token": ...}` events (thinking tokens add
`"phase": "thinking"`, as `POST /api/chat` does), then `data: [DONE]`. Served by uvicorn like the
backend (uvloop and httptools when installed). No sessions, no limits, no coalescing, no
keep-alives, no deadline: a floor, not a product.

    .venv/bin/python -m bench.direct_sse --port 8100 --token-delay-ms 20
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from backend.core.types import Question
from backend.llm.simulated import SimulatedModel


class ChatBody(BaseModel):
    prompt: str
    thinking: bool = False


def create_app(delay_ms: float) -> FastAPI:
    app = FastAPI()
    model = SimulatedModel(delay_ms, delay_ms)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/chat")
    async def chat(body: ChatBody) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            async for token in model.stream(Question(body.prompt, body.thinking)):
                event = {"token": token.text}
                if token.phase == "thinking":
                    event["phase"] = "thinking"
                yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    # uvicorn's defaults, as the backend runs: uvloop and httptools (loop and http "auto"), an
    # access log line per request.
    uvicorn.run(create_app(args.token_delay_ms), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
