"""What goes onto a `stream:` channel: the JSON of each chunk and of the one final `done`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from backend.core.types import Chunk, Done, StopReason


class ChunkPublication(BaseModel):
    """Part of the answer (or of the thinking phase); may hold several tokens."""

    text: str
    done: Literal[False] = False
    phase: Literal["thinking"] | None = None
    seq: int | None = None


class DonePublication(BaseModel):
    """The one last publication of a stream."""

    text: Literal[""] = ""
    done: Literal[True] = True
    reason: StopReason
    error: str | None = None
    seq: int | None = None  # the last chunk's: a reader holding fewer missed some


def publication(item: Chunk | Done) -> dict[str, object]:
    """The JSON object Centrifugo fans out: optional fields are left out, not sent as null.
    Built by hand, once per publication on the hot path; tests check it against the models
    above, which document it."""
    if isinstance(item, Done):
        data: dict[str, object] = {"text": "", "done": True, "reason": item.reason}
        if item.error is not None:
            data["error"] = item.error
    else:
        data = {"text": item.text, "done": False}
        if item.phase == "thinking":
            data["phase"] = "thinking"
    if item.seq:
        data["seq"] = item.seq
    return data
