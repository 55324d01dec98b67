"""Commands the scripts run are found where Debian installs them: nginx is /usr/sbin/nginx, and
/usr/sbin is on root's PATH only (review91: a user with nginx installed was told to install it,
and `make run` failed with a traceback)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from scripts.run import Service, StartFailed, Supervisor
from scripts.system_commands import MissingCommand, find, require
from tests.processes import ROOT

pytestmark = pytest.mark.unit


def executable(folder: Path, name: str, body: str = "exit 0") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def test_a_command_off_path_is_found_in_sbin(tmp_path: Path) -> None:
    sbin = executable(tmp_path / "sbin", "relaychat-daemon")
    assert find("relaychat-daemon", path=[str(tmp_path / "bin")], sbin=[str(sbin.parent)]) == str(
        sbin
    )


def test_path_comes_first(tmp_path: Path) -> None:
    on_path = executable(tmp_path / "bin", "relaychat-daemon")
    executable(tmp_path / "sbin", "relaychat-daemon")
    found = find("relaychat-daemon", path=[str(on_path.parent)], sbin=[str(tmp_path / "sbin")])
    assert found == str(on_path)


def test_a_missing_command_says_how_to_install_it(tmp_path: Path) -> None:
    where = {"path": [str(tmp_path)], "sbin": [str(tmp_path / "sbin")]}
    assert find("nginx", **where) is None
    with pytest.raises(MissingCommand, match=r"nginx is not installed .*apt-get install nginx"):
        require("nginx", **where)
    with pytest.raises(MissingCommand) as unknown:
        require("relaychat-daemon", **where)
    assert "apt-get" not in str(unknown.value)


def test_a_service_whose_command_is_missing_fails_to_start_with_a_message(tmp_path: Path) -> None:
    prepared: list[bool] = []
    service = Service(
        "nginx",
        ["relaychat-no-such-command", "-g", "daemon off;"],
        "http://127.0.0.1:1/",
        1,
        "127.0.0.1",
        "NGINX_PORT",
        {"PATH": str(tmp_path)},
        prepare=lambda: prepared.append(True),
    )
    with pytest.raises(StartFailed, match="nginx cannot start: relaychat-no-such-command is not"):
        Supervisor({}, tmp_path).start(service)
    assert prepared == []  # nothing written for a service that cannot run


def test_a_service_s_command_is_looked_up_on_its_own_path(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    executable(bin_dir, "relaychat-daemon", "echo started; exit 3")
    service = Service(
        "daemon",
        ["relaychat-daemon"],
        "http://127.0.0.1:1/",
        1,
        "127.0.0.1",
        "",
        {"PATH": str(bin_dir)},
    )
    supervisor = Supervisor({}, tmp_path)
    with pytest.raises(StartFailed, match="daemon exited with code 3 before it answered"):
        supervisor.start(service)


def test_apt_install_takes_a_command_in_sbin_as_installed(tmp_path: Path) -> None:
    """ldconfig (libc-bin, on every Debian) is in /sbin; PATH without it, and an apt-get that
    fails should it be asked to install anything."""
    assert os.access("/sbin/ldconfig", os.X_OK), "Debian's /sbin/ldconfig is missing"
    fake = executable(tmp_path / "bin", "apt-get", "echo apt-get was run >&2; exit 1")
    result = subprocess.run(
        ["bash", str(ROOT / "scripts" / "apt-install.sh"), "ldconfig", "libc-bin"],
        env={"PATH": f"{fake.parent}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")


def test_a_program_found_through_a_relative_path_entry_runs_from_the_state_dir_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run` starts its servers in the state dir: a program found on a PATH entry like
    `bin` (relative to where make ran) is given by its absolute path."""
    executable(tmp_path / "bin", "relaychat-daemon")
    monkeypatch.chdir(tmp_path)
    service = Service("daemon", ["relaychat-daemon", "-x"], "", 1, "127.0.0.1", "", {"PATH": "bin"})
    command = Supervisor({}, tmp_path / "state").command_of(service)
    assert command == [str(tmp_path / "bin" / "relaychat-daemon"), "-x"]
