"""`python -m backend`: serve the API with uvicorn (host and port from BACKEND_HOST/PORT)."""

from __future__ import annotations

import logging

import uvicorn

from backend.app import create_app
from backend.config import get_settings


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO: a line per publication, i.e. per chunk of every answer.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.backend_host,
        port=settings.backend_port,
        log_level="info",
    )


if __name__ == "__main__":
    main()
