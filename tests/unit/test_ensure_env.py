"""scripts/ensure-env.sh, which `make run` runs first: a settings file with random secrets."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from backend.config import Settings
from tests.processes import ROOT

SECRETS = ("CENTRIFUGO_HTTP_API_KEY", "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "SESSION_SECRET")
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
        "(it said change-me, or had none)\n"
    )
    after = target.read_text()
    assert target.stat().st_mode & 0o777 == 0o640  # its mode kept
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
