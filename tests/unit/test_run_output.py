"""`make run` passes each service's output on with the service's name in front of every line."""

from __future__ import annotations

import io

from scripts.run import relay_output


def test_every_line_is_led_by_the_service_s_name() -> None:
    source = io.BytesIO(b"Started server process\nApplication startup complete.\nno newline")
    sink = io.BytesIO()

    relay_output(source, b"backend-2  | ", sink)

    assert sink.getvalue().splitlines() == [
        b"backend-2  | Started server process",
        b"backend-2  | Application startup complete.",
        b"backend-2  | no newline",
    ]
    assert source.closed


class Refusing(io.BytesIO):
    """A terminal that refuses its first `refusals` writes (hung up, disk full, EAGAIN)."""

    def __init__(self, refusals: int) -> None:
        super().__init__()
        self.refusals = refusals

    def write(self, data: bytes, /) -> int:  # type: ignore[override]
        if self.refusals:
            self.refusals -= 1
            raise OSError(5, "Input/output error")
        return super().write(data)


def test_a_line_the_terminal_refuses_is_dropped_and_the_rest_still_pass() -> None:
    """Stopping there closed the service's pipe: the backend ran on silenced, and Centrifugo
    died of SIGPIPE at its next line (review)."""
    source = io.BytesIO(b"one\ntwo\nthree\n")
    sink = Refusing(refusals=1)

    relay_output(source, b"centrifugo | ", sink)

    assert sink.getvalue() == b"centrifugo | two\ncentrifugo | three\n"
