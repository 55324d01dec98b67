#!/usr/bin/env bash
# Writes .env (or the file given) from .env.example with fresh random secrets, unless it exists.
# In one that exists (a copy of .env.example made by hand, say), only the four secrets that
# still say `change-me`, or that it lacks and the environment does not set, get fresh random
# values; nothing else in it changes (its line endings, its owner), and it is left readable by
# its owner only. Left alone: a file with ENVIRONMENT=development (placeholders are taken there),
# one that is read-only, and anything that is not a regular file (ENV_FILE=/dev/null).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${1:-$ROOT/.env}"
umask 077
python3 - "$ROOT/.env.example" "$TARGET" <<'PY'
import os, re, secrets, stat, sys, tempfile

SECRETS = (
    "CENTRIFUGO_HTTP_API_KEY",
    "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY",
    "SESSION_SECRET",
    "REDIS_PASSWORD",
)
example, target = sys.argv[1], sys.argv[2]


def fresh() -> str:
    return secrets.token_urlsafe(48)


def say(message: str) -> None:
    print(f"env: {message}", file=sys.stderr)


if not os.path.lexists(target):
    text = open(example).read()
    text = re.sub(r"=change-me$", lambda _: "=" + fresh(), text, flags=re.M)
    open(target, "w").write(text)
    say(f"wrote {target} with fresh random secrets")
    raise SystemExit
real = os.path.realpath(target)  # a link is followed: the file it names is the one changed
try:
    info = os.stat(real)
except FileNotFoundError:
    say(f"{target} names {real}, which does not exist: nothing written")
    raise SystemExit
if not stat.S_ISREG(info.st_mode):
    raise SystemExit
with open(real, newline="") as source:  # its line endings kept
    text = source.read()
def setting(name: str) -> str:
    """A line that sets `name`, in any case (as the backend reads it), exported or not."""
    return rf"^[ \t]*(?:export[ \t]+)?(?i:{name})[ \t]*="


development = re.search(setting("ENVIRONMENT") + r"[ \t]*[\"']?development[\"']?[ \t]*\r?$", text, re.M)
in_environment = {key.upper() for key, value in os.environ.items() if value}
if os.environ.get("ENVIRONMENT", "") == "development" or (
    development and "ENVIRONMENT" not in in_environment
):
    raise SystemExit
newline = "\r\n" if "\r\n" in text else "\n"
written = []
for name in SECRETS:
    placeholder = re.compile(
        rf"^(?P<lead>[ \t]*(?:export[ \t]+)?(?i:{name})[ \t]*=[ \t]*)(?P<q>[\"']?)change-me(?P=q)"
        r"[ \t]*(?P<end>\r?)$",
        re.M,
    )
    if placeholder.search(text):
        text = placeholder.sub(lambda m: m["lead"] + fresh() + m["end"], text)
        written.append(name)
    elif not re.search(setting(name), text, re.M) and name not in in_environment:
        if text and not text.endswith("\n"):
            text += newline
        text += f"{name}={fresh()}{newline}"
        written.append(name)
if not written:
    raise SystemExit
if not info.st_mode & stat.S_IWUSR:
    say(f"{target} is read-only: {', '.join(written)} left as they are")
    raise SystemExit
# Beside it, then over it: whole at every moment, with its owner, readable by its owner only.
fd, temporary = tempfile.mkstemp(dir=os.path.dirname(real), prefix=".env-")
with os.fdopen(fd, "w", newline="") as out:
    out.write(text)
mode = stat.S_IMODE(info.st_mode) & 0o700 | 0o600
os.chmod(temporary, mode)
try:
    os.chown(temporary, info.st_uid, info.st_gid)
except PermissionError:
    pass
os.replace(temporary, real)
tightened = "; it is readable by its owner only now" if stat.S_IMODE(info.st_mode) & 0o077 else ""
say(
    f"wrote fresh random secrets into {target} for {', '.join(written)} "
    f"(it said change-me, or had none){tightened}"
)
PY
