"""The ports the core needs, and the errors they raise: a model, a publisher, and the registry
of running streams. Implementations live at the edges and are injected into `create_app`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from typing import NamedTuple, Protocol

from backend.core.types import Chunk, Done, Question, Snapshot, StreamStats, Token
from backend.core.unicode import repaired


class ModelError(Exception):
    """The model could not answer; the message is fit to show to the person who asked. `kind`
    names the failure for metrics: `status` (the model server refused), `timeout`,
    `unreachable`, `protocol` (what it sent is not a well-formed answer), `reported` (it sent
    an error), `cut_off` (it stopped for a length limit or a content filter), `empty` (no
    text). `detail` is for the log only (e.g. the address and the error underneath). Both are
    made carriable (a lone surrogate in a model server's error message became a 500, a `done`
    that could not be published and a connection closed under another user: an outside-in
    probe)."""

    def __init__(self, message: str, *, kind: str = "error", detail: str = "") -> None:
        super().__init__(repaired(message))
        self.kind = kind
        self.detail = repaired(detail)


class PublishError(Exception):
    """A publication was not taken (the real-time server is unreachable, refused it, ...)."""

    def __init__(self, channel: str, message: str, *, retryable: bool = False) -> None:
        where = f" on {channel!r}" if channel else ""
        super().__init__(f"publishing{where} failed: {message}")
        self.channel = channel
        self.message = message
        self.retryable = retryable


class StreamsUnavailable(Exception):
    """The shared streams registry cannot be reached."""


class StreamsRecovering(StreamsUnavailable):
    """The shared registry lost its data (a restart without it) moments ago, and the running
    streams' processes have not all registered theirs again: whether a stream runs is not
    known yet."""


class StreamBusy(Exception):
    """The channel already has a running stream."""


class ChannelUsed(StreamBusy):
    """The channel already carried an answer: its history holds it; a new one needs a new id."""


class TooManyStreams(Exception):
    """The user already has as many answers streaming as one user may."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} answers are already streaming for this user")
        self.limit = limit


class TooManyFromAddress(Exception):
    """The client's address already has as many answers streaming as one address may (many
    users, each with sessions of their own, behind it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} answers are already streaming from this client address")
        self.limit = limit


class ServerBusy(Exception):
    """This process already runs as many answers as it may: nothing was started."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"{limit} answers are already running in this process")
        self.limit = limit


class ServerStopping(Exception):
    """This process is shutting down (it lets the answers it runs finish first): nothing was
    started; another process, or this one once restarted, takes the prompt."""

    def __init__(self) -> None:
        super().__init__("this process is stopping and takes no new answers")


# One publication: the channel, the chunk or done, its idempotency key (None: none), and the
# stream it belongs to (its lease: one stream's chunks and `done`s share it, the next stream
# on the channel has another; "" for none).
Publication = tuple[str, Chunk | Done, str | None, str]
# One chunk for a stream's snapshot: the channel, the stream's lease, the numbered chunk.
Recording = tuple[str, str, Chunk]


class Model(Protocol):
    def stream(self, question: Question) -> AsyncIterator[Token]:
        """Yield the answer to `question`, token by token; thinking tokens (if asked for) come
        first. Raise `ModelError` when the model cannot answer. Closing the iterator early
        must release what it holds (an upstream connection)."""
        ...


class Publisher(Protocol):
    async def publish(
        self,
        channel: str,
        item: Chunk | Done,
        *,
        idempotency_key: str | None = None,
        stream: str = "",
    ) -> None:
        """Publish `item` of `stream` to `channel`, in order with the channel's earlier items;
        raise `PublishError` when it was not taken. A retry with the same key is not published
        twice."""
        ...

    async def publish_many(self, items: Sequence[Publication]) -> list[PublishError | None]:
        """Publish each (channel, item, idempotency key, stream), each in order with its channel's
        earlier items: all are queued before the first wait, so anything published after this
        call starts goes out after them. Each one's outcome: None when taken, else the error."""
        ...

    async def ready(self, *, known: bool = False) -> None:
        """Return when the real-time server takes publications; raise `PublishError` if not.
        `known`: what is already known will do (a check may go on in the background), for the
        hot path; else a stale answer is checked first."""
        ...


StopRequest = Callable[[Done], None]


class Orphan(NamedTuple):
    """A stream whose process is gone: its channel, the `seq` of its last recorded chunk, the
    lease it was claimed with (its `done` key, backend/core/endings.py) and the `done` it was
    ended with (a stop asked of it before, e.g. the user's cancel, else the reaper's)."""

    channel: str
    seq: int
    lease: str
    done: Done


class Streams(Protocol):
    """Which channels have a running stream, how to stop one wherever it runs, and each
    stream's snapshot (its answer so far), kept for a while after it ended."""

    async def claim(
        self,
        channel: str,
        stop: StopRequest,
        *,
        owner: str = "",
        max_per_owner: int = 0,
        address: str = "",
        max_per_address: int = 0,
    ) -> str:
        """Register a stream in `channel` for `owner`, started from the client `address`;
        return its lease. Raise `StreamBusy` when one runs there, `ChannelUsed` when one ran
        there recently, `TooManyStreams` when `owner` already runs `max_per_owner` (0: no cap),
        `TooManyFromAddress` when streams started from `address` already number
        `max_per_address` (0, or no address: no cap). Every cap counts the streams of every
        process that shares the registry. `stop` is called, in the claiming process, when
        someone asks the stream to end."""
        ...

    async def record(self, chunks: Sequence[Recording]) -> list[bool]:
        """Each (channel, lease, numbered chunk) is being published: it joins its stream's
        snapshot. For each, False when another process has ended that stream meanwhile (it must
        stop, and this chunk is not published)."""
        ...

    async def release(self, channel: str, lease: str, done: Done) -> bool:
        """The stream of `lease` has ended with `done` (`done.seq`: the chunks published); its
        snapshot is kept finished. False when the lease was no longer this stream's (another
        process ended it)."""
        ...

    async def snapshot(self, channel: str) -> Snapshot | None:
        """The answer in `channel` so far (or finished); None if no stream ran there lately."""
        ...

    async def reap_expired(self, done: Done, *, limit: int = 1000) -> list[Orphan]:
        """End the streams whose process is gone (shared registries: their lease expired),
        releasing each with `done`, or with the `done` a stop asked of it before (its process
        could not act on it: hung, then gone). The caller publishes their `done`."""
        ...

    async def stop(self, channel: str, done: Done) -> bool:
        """Ask the stream running in `channel` to end with `done`; False if none runs there."""
        ...


class StreamEvents(Protocol):
    """What the core reports as streams run, for logs and metrics (edges implement it)."""

    def stream_started(self, channel: str) -> None: ...

    def stream_ended(self, channel: str, done: Done, stats: StreamStats) -> None: ...

    def model_failed(self, kind: str, message: str) -> None:
        """The model failed (`kind` as in `ModelError`, or `time_limit`, `size_limit`,
        `unexpected`)."""
        ...
