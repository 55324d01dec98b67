"""`python -m backend`: serve the API with uvicorn (host and port from BACKEND_HOST/PORT)."""

from __future__ import annotations

import logging.config
import socket

import uvicorn
from fastapi import FastAPI

from backend.app import begin_shutdown, create_app
from backend.config import get_settings
from backend.logs import log_config


class Server(uvicorn.Server):
    """uvicorn, but on SIGTERM or Ctrl-C the streams end first (relay streams with their `done`,
    SSE clients with an error event), before uvicorn waits for open connections to close: an
    SSE client would otherwise hold the shutdown up until its answer is complete, and a platform
    that kills after a few seconds would leave relay streams without a `done`."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await begin_shutdown(self._app)
        await super().shutdown(sockets)


def main() -> None:
    settings = get_settings()
    logging.config.dictConfig(log_config(settings))
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.backend_host,
        port=settings.backend_port,
        log_config=log_config(settings),
        log_level="info",
    )
    Server(config, app).run()


if __name__ == "__main__":
    main()
