"""One log line when a relayed stream starts and one when it ends (channel id, user, reason,
duration, tokens, chunks, time to first token), and one per model failure: the core's
`StreamEvents`, told as log records. With LOG_FORMAT=json the fields are JSON keys too."""

from __future__ import annotations

import logging

from backend.core.types import Done, StreamStats

logger = logging.getLogger("relaychat.streams")


def _parts(channel: str) -> tuple[str, str]:
    """The stream id and the user of `stream:<id>#<user>`."""
    stream_id, _, user = channel.removeprefix("stream:").partition("#")
    return stream_id, user


class StreamLog:
    def stream_started(self, channel: str) -> None:
        stream_id, user = _parts(channel)
        logger.info(
            "stream started id=%s user=%s",
            stream_id,
            user,
            extra={"event": "stream_started", "stream_id": stream_id, "user": user},
        )

    def stream_ended(self, channel: str, done: Done, stats: StreamStats) -> None:
        stream_id, user = _parts(channel)
        first = stats.first_chunk_seconds
        first_ms = None if first is None else round(first * 1000, 1)
        fields = {
            "event": "stream_ended",
            "stream_id": stream_id,
            "user": user,
            "reason": done.reason,
            "error": done.error,
            "seconds": round(stats.seconds, 3),
            "tokens": stats.tokens,
            "chunks": stats.chunks,
            "first_token_ms": first_ms,
        }
        level = logging.INFO if done.reason in ("complete", "cancelled") else logging.WARNING
        logger.log(
            level,
            "stream ended id=%s user=%s reason=%s seconds=%.3f tokens=%d chunks=%d "
            "first_token_ms=%s%s",
            stream_id,
            user,
            done.reason,
            stats.seconds,
            stats.tokens,
            stats.chunks,
            first_ms,
            f" error={done.error!r}" if done.error else "",
            extra=fields,
        )

    def model_failed(self, kind: str, message: str) -> None:
        """Logged where it happens (backend/core/answer.py); nothing more to say here."""
