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
    """The JSON object Centrifugo fans out: optional fields are left out, not sent as null."""
    if isinstance(item, Done):
        model: BaseModel = DonePublication(
            reason=item.reason, error=item.error, seq=item.seq or None
        )
    else:
        thinking = item.phase == "thinking"
        model = ChunkPublication(
            text=item.text, phase="thinking" if thinking else None, seq=item.seq or None
        )
    return model.model_dump(exclude_none=True)
