"""Telling the edges' logs and metrics (`StreamEvents`) what happened: each is told, whatever
another raises, and none of them can stop or spoil a stream."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable

from backend.core.ports import StreamEvents

logger = logging.getLogger(__name__)

# How many times each hook has failed. Its first failure is logged with its traceback, then one
# line at its 10th, 100th, 1,000th, ...: a hook that keeps failing (a broken exporter) would
# otherwise log a traceback for every event of every stream, thousands a second.
_failures: weakref.WeakKeyDictionary[StreamEvents, int] = weakref.WeakKeyDictionary()


def tell_each(events: Iterable[StreamEvents], tell: Callable[[StreamEvents], None]) -> None:
    """`tell(each)` for every one of `events`; what one raises is logged, not passed on."""
    for each in events:
        try:
            tell(each)
        except Exception:
            _log_failure(each)


def _log_failure(hook: StreamEvents) -> None:
    name = type(hook).__name__
    try:
        count = _failures[hook] = _failures.get(hook, 0) + 1
    except TypeError:  # a hook that takes no weak reference: every failure logged
        count = 1
    if count == 1:
        logger.exception("%s failed to take a stream event", name)
    elif str(count).strip("0") == "1":  # 10, 100, 1000, ...
        logger.error(
            "%s failed to take a stream event %d times now (the first failure's traceback was "
            "logged)",
            name,
            count,
        )
