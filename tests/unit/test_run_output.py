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
