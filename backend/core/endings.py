"""How streams end when something other than the model ends them: the `done` publications the
relay and its outbox send, and the messages they carry."""

from __future__ import annotations

from backend.core.types import Done

CANCELLED = Done("cancelled")
SHUTDOWN = Done("error", "the server is stopping; please send the prompt again")
ORPHANED = Done("error", "the server answering this stopped; please send the prompt again")
UNDELIVERED = "the answer could not be delivered"
UNEXPECTED = "the answer failed unexpectedly"


def done_key(channel: str) -> str:
    """The idempotency key of the one `done` of `channel`, whichever process sends it."""
    return f"done:{channel}"
