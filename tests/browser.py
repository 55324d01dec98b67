"""Headless Debian Chromium as the browser tests drive it, and what they check it logged."""

from __future__ import annotations

from playwright.async_api import ConsoleMessage

from tests.processes import ROOT

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium keeps trying to reach Google's hosts.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
SCREENSHOTS = ROOT / ".cache" / "screenshots"


class ConsoleErrors(list[str]):
    def record(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.append(message.text)

    def expect(self, fragment: str) -> None:
        """Chromium logs every failed HTTP response itself; a test that provokes one says so."""
        self[:] = [text for text in self if fragment not in text]
