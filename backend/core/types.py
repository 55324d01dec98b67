"""What flows through the core: the question asked, the model's tokens, the chunks relayed, and
how a stream ends. Plain frozen dataclasses; the HTTP layer validates them with pydantic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Phase = Literal["thinking", "answer"]
StopReason = Literal["complete", "cancelled", "error", "timeout"]
Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier message of the conversation."""

    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class Question:
    """A prompt, whether to stream the thinking phase, and the conversation before it."""

    prompt: str
    thinking: bool = False
    history: tuple[Turn, ...] = ()


@dataclass(frozen=True, slots=True)
class Token:
    """One piece of a model's output, as the model produced it."""

    text: str
    phase: Phase = "answer"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One or more consecutive tokens of one phase: what is relayed as one publication. The
    relay numbers a stream's chunks 1, 2, ... (`seq`; 0: not numbered)."""

    text: str
    phase: Phase = "answer"
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Done:
    """How a stream ended; `error` is a message for people (for `error` and `timeout`). As
    published, `seq` is the last chunk's (0: none, or not numbered): a reader holding fewer
    chunks knows it missed some."""

    reason: StopReason
    error: str | None = None
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A stream's answer so far: its chunks 1..`seq`, joined by phase; `done` once it ended."""

    text: str = ""
    thinking: str = ""
    seq: int = 0
    done: Done | None = None


@dataclass(frozen=True, slots=True)
class StreamStats:
    """How one relayed stream went, for logs and metrics: how long it ran, how long its first
    chunk took (None: there was none), and what it relayed."""

    seconds: float
    first_chunk_seconds: float | None
    chunks: int
    tokens: int
