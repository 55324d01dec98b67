"""How streams end when something other than the model ends them: the `done` publications the
relay and its outbox send, and the messages they carry."""

from __future__ import annotations

from backend.core.types import Done

CANCELLED = Done("cancelled")
SHUTDOWN = Done("error", "the server is stopping; please send the prompt again")
ORPHANED = Done("error", "the server answering this stopped; please send the prompt again")
UNEXPECTED = "the answer failed unexpectedly"


def done_key(channel: str, lease: str) -> str:
    """The idempotency key of the one `done` of the stream that `lease` claimed in `channel`,
    whichever process sends it (the owner, or a survivor that reaped its expired lease). Per
    stream, not per channel: Centrifugo remembers a key for minutes, longer than a channel is
    kept from reuse, and a second stream's `done` under the first one's key was dropped."""
    return f"done:{channel}:{lease}"
