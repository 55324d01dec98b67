"""The README, docs/ and .env.example agree with the code and with each other."""

from __future__ import annotations

import inspect
import re
import subprocess

import uvicorn.config

from backend.config import Settings
from tests.processes import ROOT

README = (ROOT / "README.md").read_text()
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
RUN_SCRIPT = (ROOT / "scripts" / "run.py").read_text()
# Read by `make run` (scripts/run.py) rather than by the backend's Settings: each of its
# `port_setting(env, "NAME", ...)` and `host_setting(...)`, and the origins it derives.
RUN_SETTINGS = set(
    re.findall(r'(?:(?:port|host)_setting\(env, |env\.get\()"([A-Z][A-Z0-9_]+)"', RUN_SCRIPT)
) | {"CENTRIFUGO_CLIENT_ALLOWED_ORIGINS"}


def readme_settings() -> set[str]:
    table = README[README.index("## Configuration") :]
    table = table[: table.index("\n## ", 1)]
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", table, flags=re.M))


def example_settings() -> set[str]:
    """Set or commented out (`# NAME=...`): either way listed."""
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE, flags=re.M))


def test_make_run_s_own_settings_are_found_in_its_script() -> None:
    assert {"NGINX_PORT", "NGINX_HOST", "CLUSTER_REDIS_PORT", "NGINX_TRUSTED_PROXY"} <= RUN_SETTINGS


# Read by uvicorn itself (the backend's server) from the environment.
UVICORN_SETTINGS = {"FORWARDED_ALLOW_IPS"}


def test_uvicorn_reads_its_settings_from_the_environment() -> None:
    source = inspect.getsource(uvicorn.config)
    for name in UVICORN_SETTINGS:
        assert f'os.environ.get("{name}"' in source, name


# Read by the compose cluster's file (its services' environment) rather than by a process.
COMPOSE_SETTINGS = {"REDIS_PASSWORD"}


def test_the_compose_cluster_reads_its_own_settings() -> None:
    cluster = (ROOT / "docker-compose.cluster.yml").read_text()
    for name in COMPOSE_SETTINGS:
        assert f"${{{name}:?" in cluster, name


def code_settings() -> set[str]:
    aliases = {str(field.validation_alias) for field in Settings.model_fields.values()}
    return aliases | RUN_SETTINGS | UVICORN_SETTINGS | COMPOSE_SETTINGS


def test_the_readme_table_lists_every_setting_of_the_code() -> None:
    assert readme_settings() == code_settings()


def test_env_example_lists_every_setting_of_the_readme() -> None:
    assert example_settings() == readme_settings()


def test_links_in_the_readme_and_docs_lead_to_files_of_the_repository() -> None:
    for document in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = document.read_text()
        assert "../shared" not in text, document
        for target in re.findall(r"\]\(([^)#]+)\)", text):
            if not target.startswith(("http://", "https://")):
                assert (document.parent / target).exists(), f"{document.name}: {target}"


def test_files_the_docs_name_exist() -> None:
    """Paths in backticks that look like the project's own files (drift caught before)."""
    text = README + "".join(p.read_text() for p in (ROOT / "docs").glob("*.md"))
    named = set(
        re.findall(r"`((?:scripts|backend|tests|nginx|centrifugo|frontend|bench)/[\w./-]+)`", text)
    )
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert missing == []


def test_the_readme_s_module_table_names_every_module_of_the_backend() -> None:
    """A docs walkthrough: `__main__.py` and `api/main.py` were missing (routes/ is one row)."""
    table = README[README.index("Inside `backend/`") : README.index("\nBeside it:")]
    modules = [*(ROOT / "backend").glob("*.py"), *(ROOT / "backend").glob("*/*.py")]
    named = set(re.findall(r"`([\w.]+\.py)`", table))
    missing = sorted(
        str(path.relative_to(ROOT / "backend"))
        for path in modules
        if path.name != "__init__.py" and path.name not in named
    )
    assert missing == []


def test_make_help_lists_every_target_and_the_readme_points_to_it() -> None:
    """A docs walkthrough: `make clean` (which deletes .venv and .cache) and others were in no
    document, and there was no `make help`."""
    makefile = (ROOT / "Makefile").read_text()
    (phony,) = re.findall(r"^\.PHONY: (.+)$", makefile, flags=re.M)
    listed = subprocess.run(
        ["make", "-s", "--no-print-directory", "help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    described = dict(re.findall(r"^  make (\S+) +(.+)$", listed, flags=re.M))
    assert set(phony.split()) | {".env"} == set(described)
    assert "`make help`" in README
