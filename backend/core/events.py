"""Telling the edges' logs and metrics (`StreamEvents`) what happened: each is told, whatever
another raises, and none of them can stop or spoil a stream."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from backend.core.ports import StreamEvents

logger = logging.getLogger(__name__)


def tell_each(events: Iterable[StreamEvents], tell: Callable[[StreamEvents], None]) -> None:
    """`tell(each)` for every one of `events`; what one raises is logged, not passed on."""
    for each in events:
        try:
            tell(each)
        except Exception:
            logger.exception("%s failed to take a stream event", type(each).__name__)
