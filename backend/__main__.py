"""`python -m backend`: serve the API with uvicorn (host and port from BACKEND_HOST/PORT)."""

from __future__ import annotations

import logging
import os

import uvicorn

from backend.main import create_app


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO: a line per publication, i.e. per chunk of every answer.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(),
        host=os.environ.get("BACKEND_HOST", "127.0.0.1"),
        port=int(os.environ.get("BACKEND_PORT", "5000")),
        log_level="info",
    )


if __name__ == "__main__":
    main()
