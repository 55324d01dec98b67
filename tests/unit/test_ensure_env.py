"""scripts/ensure-env.sh, which `make run` runs first: a settings file with random secrets."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from backend.config import Settings
from tests.processes import ROOT

SECRETS = (
    "CENTRIFUGO_HTTP_API_KEY",
    "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY",
    "SESSION_SECRET",
    "REDIS_PASSWORD",
)
EXAMPLE = (ROOT / ".env.example").read_text()


def ensure(target: Path, **environment: str) -> str:
    """Runs the script on `target`; what it said."""
    env = {k: v for k, v in os.environ.items() if k not in SECRETS} | environment
    result = subprocess.run(
        [str(ROOT / "scripts" / "ensure-env.sh"), str(target)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stderr


def values(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", text, re.M))


def settings_from(path: Path) -> Settings:
    return Settings(_env_file=path)


def without_secrets_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*SECRETS, "ENVIRONMENT"):
        monkeypatch.delenv(name, raising=False)


def test_a_new_file_gets_random_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "new.env"
    assert "wrote" in ensure(target)
    assert target.stat().st_mode & 0o777 == 0o600
    written = values(target.read_text())
    assert all(len(written[name]) >= 32 for name in SECRETS)
    without_secrets_in_environment(monkeypatch)
    settings_from(target)  # taken, in production


def test_a_copy_of_the_example_gets_random_secrets_and_nothing_else_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Probe: `cp .env.example .env; make run` was refused for its placeholder secrets, saying
    `make run` would write them, which it never did to a file that exists."""
    target = tmp_path / "copied.env"
    target.write_text(EXAMPLE + "MAX_TEXT_CHARS=100\n")
    target.chmod(0o640)
    said = ensure(target)
    assert said == (
        f"env: wrote fresh random secrets into {target} for {', '.join(SECRETS)} "
        "(it said change-me, or had none); it is readable by its owner only now\n"
    )
    after = target.read_text()
    assert target.stat().st_mode & 0o777 == 0o600  # secrets in it now: for its owner only
    assert "=change-me" not in after
    before_lines, after_lines = (EXAMPLE + "MAX_TEXT_CHARS=100\n").splitlines(), after.splitlines()
    assert len(before_lines) == len(after_lines)
    changed = [a for b, a in zip(before_lines, after_lines, strict=True) if a != b]
    assert [line.split("=")[0] for line in changed] == list(SECRETS)
    without_secrets_in_environment(monkeypatch)
    assert settings_from(target).max_text_chars == 100
    # Once set, nothing more is written, and nothing said.
    assert ensure(target) == ""
    assert target.read_text() == after


def test_a_missing_secret_is_added_unless_the_environment_sets_it(tmp_path: Path) -> None:
    full = tmp_path / "full.env"
    ensure(full)
    lacking = "".join(
        line for line in full.read_text().splitlines(keepends=True) if not line.startswith("SESS")
    )
    target = tmp_path / "lacking.env"
    target.write_text(lacking)
    assert ensure(target, SESSION_SECRET="s" * 40) == ""
    assert target.read_text() == lacking
    assert "for SESSION_SECRET (" in ensure(target)
    assert target.read_text().startswith(lacking)
    assert len(values(target.read_text())["SESSION_SECRET"]) >= 32


@pytest.mark.parametrize("value", ["secret", "short", "", "change-me-please"])
def test_other_values_are_left_to_their_owner(tmp_path: Path, value: str) -> None:
    """Only `change-me` (the example's placeholder) is replaced; any other value was set by
    someone, and the backend says what is wrong with it."""
    target = tmp_path / "set.env"
    text = EXAMPLE.replace("SESSION_SECRET=change-me", f"SESSION_SECRET={value}")
    target.write_text(text)
    ensure(target)
    assert values(target.read_text())["SESSION_SECRET"] == value


def test_make_run_fills_in_a_hand_copied_file(tmp_path: Path) -> None:
    """`make run` (and `make .env`) runs the script on a file that exists too."""
    target = tmp_path / "copied.env"
    target.write_text(EXAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", str(target), f"ENV_FILE={target}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "wrote fresh random secrets" in result.stderr
    assert "=change-me" not in target.read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run: setup \$\(ENV_FILE\)", makefile, re.M)
    assert re.search(r"^run-cluster: setup \$\(ENV_FILE\)", makefile, re.M)


def test_a_linked_file_is_changed_where_it_is(tmp_path: Path) -> None:
    """A review: a .env that is a link was replaced by a file, and the one it named kept its
    placeholders."""
    real = tmp_path / "shared.env"
    real.write_text(EXAMPLE)
    link = tmp_path / "link.env"
    link.symlink_to(real)
    ensure(link)
    assert link.is_symlink()
    assert "=change-me" not in real.read_text()


def test_a_secret_written_in_lower_case_is_there_already(tmp_path: Path) -> None:
    """A review: `session_secret=...` (the backend reads it, in any case) got an upper-case copy
    added, which won: every session cookie stopped working."""
    full = tmp_path / "full.env"
    ensure(full)
    text = full.read_text().replace("SESSION_SECRET=", "session_secret=")
    target = tmp_path / "lower.env"
    target.write_text(text)
    assert ensure(target) == ""
    assert target.read_text() == text


def test_quoted_exported_and_crlf_placeholders_are_replaced_and_the_rest_kept(
    tmp_path: Path,
) -> None:
    target = tmp_path / "styles.env"
    target.write_bytes(
        b'export CENTRIFUGO_HTTP_API_KEY="change-me"\r\n'
        b"CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY = 'change-me'\r\n"
        b"MAX_TEXT_CHARS=100"
    )
    ensure(target)
    lines = target.read_bytes().split(b"\r\n")
    assert lines[0].startswith(b"export CENTRIFUGO_HTTP_API_KEY=")
    assert lines[1].startswith(b"CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY = ")
    assert b"change-me" not in target.read_bytes()
    assert lines[2] == b"MAX_TEXT_CHARS=100"  # its own line, a CRLF added after it
    assert lines[3].startswith(b"SESSION_SECRET=")
    assert lines[4].startswith(b"REDIS_PASSWORD=")
    assert lines[5] == b""
    assert len(lines[3]) > len(b"SESSION_SECRET=") + 32


def test_left_alone_development_read_only_and_what_is_no_file(tmp_path: Path) -> None:
    development = tmp_path / "dev.env"
    development.write_text(EXAMPLE.replace("ENVIRONMENT=production", "ENVIRONMENT=development"))
    before = development.read_text()
    ensure(development)
    assert development.read_text() == before  # placeholders are taken there
    production = tmp_path / "prod.env"
    production.write_text(before)
    ensure(production, ENVIRONMENT="production")  # the environment overrides the file
    assert "=change-me" not in production.read_text()

    read_only = tmp_path / "read-only.env"
    read_only.write_text(EXAMPLE)
    read_only.chmod(0o400)
    assert "is read-only" in ensure(read_only)
    assert read_only.read_text() == EXAMPLE

    fifo = tmp_path / "fifo.env"
    os.mkfifo(fifo)
    assert ensure(fifo) == ""  # not opened (it would wait for a writer)
    assert fifo.is_fifo()
