"""requirements-dev.lock (what `make` installs .venv with) and requirements.lock (what the
backend image installs) pin every package, and agree with pyproject.toml's own pins: a pin
changed there without `make lock` would install something other than what was tested."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tests.processes import ROOT

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;#]+)")


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def _lock(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{path.name}: not an exact pin: {line!r}"
        pins[_name(match[1])] = match[3]
    return pins


def _pyproject() -> tuple[dict[str, str], dict[str, str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def pins(requirements: list[str]) -> dict[str, str]:
        found = {}
        for requirement in requirements:
            match = PIN.match(requirement)
            assert match, f"pyproject.toml: not an exact pin: {requirement!r}"
            found[_name(match[1])] = match[3]
        return found

    return pins(project["dependencies"]), pins(project["optional-dependencies"]["test"])


RUNTIME, TEST = _pyproject()
DEV_LOCK = _lock(ROOT / "requirements-dev.lock")
IMAGE_LOCK = _lock(ROOT / "requirements.lock")


@pytest.mark.parametrize("name", sorted({**RUNTIME, **TEST}))
def test_the_dev_lock_has_pyproject_s_pin(name: str) -> None:
    assert DEV_LOCK.get(name) == {**RUNTIME, **TEST}[name], "run `make lock`"


@pytest.mark.parametrize("name", sorted(RUNTIME))
def test_the_image_lock_has_pyproject_s_pin(name: str) -> None:
    assert IMAGE_LOCK.get(name) == RUNTIME[name], "run `make lock`"


def test_the_image_runs_the_versions_the_tests_ran() -> None:
    differ = {
        name: (version, DEV_LOCK.get(name))
        for name, version in IMAGE_LOCK.items()
        if DEV_LOCK.get(name) != version
    }
    assert not differ, "run `make lock`"


@pytest.mark.parametrize("lock", [DEV_LOCK, IMAGE_LOCK], ids=["dev", "image"])
def test_the_locks_have_the_servers_fast_parts(lock: dict[str, str]) -> None:
    # uvicorn[standard]'s: without them it silently serves on asyncio and h11 (issue 13).
    assert {"uvloop", "httptools"} <= lock.keys(), "run `make lock` where uvloop installs"


def test_make_and_the_image_install_from_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet -c requirements-dev.lock -e '.[test]'" in makefile
    dockerfile = (ROOT / "backend" / "Dockerfile").read_text()
    assert "pip install --no-deps -r requirements.lock" in dockerfile
    assert "pip install --no-deps . && pip check" in dockerfile
