#!/usr/bin/env python3
"""Runs Centrifugo v6 or v5 with the project's one (v6) configuration, translated for v5.

    centrifugo_launch.py BINARY CONFIG [--out DIR]

v6 runs `CONFIG` as it is. v5.4 reads the same settings under flat keys and other environment
variable names; for it, the v5 equivalent of `CONFIG` is written into `DIR` (git-ignored
`.cache/centrifugo` by default) and the v6 variables in the environment are renamed. Every key of
the v6 file and every `CENTRIFUGO_*` variable must have a v5 equivalent in `V5_KEYS`: an unknown
one is an error naming it, so the two versions cannot drift apart silently. The process then
becomes Centrifugo (exec), so signals reach the server itself.

Standard library only: it runs before the project's virtualenv exists, and is imported by tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# v6 setting (path of nested keys) -> the v5.4 flat key. Environment variables follow from the
# keys: CENTRIFUGO_ + the upper-cased path joined by `_` (v6), CENTRIFUGO_ + the flat key (v5).
V5_KEYS: dict[tuple[str, ...], str] = {
    ("log", "level"): "log_level",
    ("http_server", "address"): "address",
    ("http_server", "port"): "port",
    ("http_server", "internal_address"): "internal_address",
    ("http_server", "internal_port"): "internal_port",
    ("health", "enabled"): "health",
    ("prometheus", "enabled"): "prometheus",
    ("http_api", "key"): "api_key",
    ("client", "token", "hmac_secret_key"): "token_hmac_secret_key",
    ("client", "allowed_origins"): "allowed_origins",
    ("client", "recovery_max_publication_limit"): "client_recovery_max_publication_limit",
    ("client", "history_max_publication_limit"): "client_history_max_publication_limit",
    ("engine", "type"): "engine",
    ("engine", "redis", "address"): "redis_address",
    ("channel", "namespaces"): "namespaces",
    ("channel", "proxy", "subscribe", "endpoint"): "proxy_subscribe_endpoint",
    ("channel", "proxy", "subscribe", "timeout"): "proxy_subscribe_timeout",
    # v5's list is shared by all its proxies; this project has only the subscribe one.
    ("channel", "proxy", "subscribe", "http_headers"): "proxy_http_headers",
}
# Keys of a namespace object: the same in both versions, or (NAMESPACE_RENAMES) renamed.
NAMESPACE_KEYS = frozenset(
    {
        "name",
        "allow_user_limited_channels",
        "history_size",
        "history_ttl",
        "history_meta_ttl",
        "force_recovery",
        "subscribe_proxy_enabled",
    }
)
NAMESPACE_RENAMES = {"subscribe_proxy_enabled": "proxy_subscribe"}
# Variables of this project's own that are not Centrifugo settings.
# This project's own variables, not Centrifugo's: never passed to it (scripts/centrifugo.sh reads
# them; an exported CENTRIFUGO_VERSION made the v5 launch refuse to start, as an unknown setting).
OWN_VARIABLES = frozenset({"CENTRIFUGO_BIN", "CENTRIFUGO_VERSION"})
NAMESPACES = ("channel", "namespaces")


class TranslationError(ValueError):
    """A v6 setting with no known v5 equivalent."""


def v6_variable(path: tuple[str, ...]) -> str:
    return "CENTRIFUGO_" + "_".join(path).upper()


def v5_variable(key: str) -> str:
    return "CENTRIFUGO_" + key.upper()


def major_version(binary: str) -> int:
    """The major version `binary version` prints (`Centrifugo v5.4.9 ...`); 6 if it says none."""
    output = subprocess.run(
        [binary, "version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout
    found = re.search(r"Centrifugo v(\d+)\.", output)
    major = int(found.group(1)) if found else 0
    return major if major else 6


def to_v5(config: Mapping[str, Any]) -> dict[str, Any]:
    """The v5 configuration equivalent to a v6 one."""
    flat: dict[str, Any] = {}
    for path, value in _leaves(config, ()):
        if path not in V5_KEYS:
            raise TranslationError(
                f"{'.'.join(path)} (in the v6 config) has no v5 equivalent in "
                "scripts/centrifugo_launch.py V5_KEYS"
            )
        if path == NAMESPACES:
            value = _v5_namespaces(value, ".".join(path))
        flat[V5_KEYS[path]] = value
    return flat


def v5_environment(env: Mapping[str, str]) -> dict[str, str]:
    """`env` with each v6 Centrifugo variable renamed to its v5 name (v5 warns about others)."""
    renames = {v6_variable(path): v5_variable(key) for path, key in V5_KEYS.items()}
    result: dict[str, str] = {}
    for name, value in env.items():
        if name in OWN_VARIABLES:
            continue
        if not name.startswith("CENTRIFUGO_"):
            result[name] = value
            continue
        if name not in renames:
            raise TranslationError(
                f"{name} (in the environment) has no v5 equivalent in "
                "scripts/centrifugo_launch.py V5_KEYS"
            )
        if name == v6_variable(NAMESPACES):
            namespaces = _json_value(name, value)
            renamed = _v5_namespaces(namespaces, name)
            value = value if renamed == namespaces else json.dumps(renamed)
        result[renames[name]] = value
    return result


def _leaves(node: Mapping[str, Any], path: tuple[str, ...]) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) of each setting; a mapping that is not itself a known setting is descended."""
    found: list[tuple[tuple[str, ...], Any]] = []
    for key, value in node.items():
        here = (*path, key)
        if isinstance(value, Mapping) and here not in V5_KEYS:
            found.extend(_leaves(value, here))
        else:
            found.append((here, value))
    return found


def _check_namespaces(namespaces: Any, where: str) -> None:
    if not isinstance(namespaces, list) or not all(isinstance(ns, dict) for ns in namespaces):
        raise TranslationError(f"{where} must be a list of namespace objects")
    for namespace in namespaces:
        unknown = sorted(set(namespace) - NAMESPACE_KEYS)
        if unknown:
            raise TranslationError(
                f"namespace key(s) {', '.join(unknown)} in {where} have no checked v5 equivalent "
                "in scripts/centrifugo_launch.py NAMESPACE_KEYS"
            )


def _v5_namespaces(namespaces: Any, where: str) -> list[dict[str, Any]]:
    """The namespaces checked, each key under its v5 name."""
    _check_namespaces(namespaces, where)
    return [
        {NAMESPACE_RENAMES.get(key, key): value for key, value in namespace.items()}
        for namespace in namespaces
    ]


def _json_value(name: str, value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise TranslationError(f"{name} is not JSON: {error}") from error


def write_v5_config(config_path: Path, out: Path) -> Path:
    """Writes the v5 translation of `config_path` into `out`; returns its path."""
    converted = to_v5(json.loads(config_path.read_text()))
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{config_path.stem}.v5.json"
    # Atomic: several servers may start from the same checkout at once (tests, make run).
    fd, partial = tempfile.mkstemp(dir=out, prefix=target.name, suffix=".partial")
    with os.fdopen(fd, "w") as file:
        json.dump(converted, file, indent=2)
    os.replace(partial, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("binary")
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / ".cache" / "centrifugo")
    args = parser.parse_args()
    config = args.config
    env = {name: value for name, value in os.environ.items() if name not in OWN_VARIABLES}
    try:
        if major_version(args.binary) == 5:
            config = write_v5_config(args.config, args.out)
            env = v5_environment(env)
    except TranslationError as error:
        sys.exit(f"centrifugo_launch: {error}")
    os.execve(args.binary, [args.binary, "--config", str(config)], env)


if __name__ == "__main__":
    main()
