"""Where a system command is: on PATH, or in the sbin directories Debian installs daemons into.

nginx is /usr/sbin/nginx there, and /usr/sbin is on root's PATH only: looking on PATH alone, a
user who had installed it was told to install it, and `make run` failed with a traceback.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


class MissingCommand(Exception):
    """A command the project runs is not installed; the message names it and how to install it."""


def find(name: str, path: Sequence[str] | None = None, sbin: Sequence[str] = SBIN) -> str | None:
    """`name` as PATH (or the folders `path`) finds it, else in `sbin`; None if neither has it."""
    on_path = shutil.which(name, path=None if path is None else os.pathsep.join(path))
    return on_path or shutil.which(name, path=os.pathsep.join(sbin))


# The Debian package of each command the project's scripts run by name.
PACKAGES = {"nginx": "nginx", "redis-server": "redis-server"}


def require(name: str, path: Sequence[str] | None = None, sbin: Sequence[str] = SBIN) -> str:
    """The path of `name`; MissingCommand, saying how to install it, if it is nowhere."""
    found = find(name, path, sbin)
    if found is None:
        package = PACKAGES.get(name)
        how = f": `sudo apt-get install {package}` (or `make setup`)" if package else ""
        raise MissingCommand(
            f"{name} is not installed (looked on PATH and in {', '.join(sbin)}){how}"
        )
    return found
