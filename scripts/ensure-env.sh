#!/usr/bin/env bash
# Writes .env (or the file given) from .env.example with fresh random secrets, unless it exists.
# In one that exists, only the three secrets that still say `change-me` (a copy of .env.example
# made by hand), or that it lacks and the environment does not set, get fresh random values;
# nothing else in it changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${1:-$ROOT/.env}"
umask 077
python3 - "$ROOT/.env.example" "$TARGET" <<'PY'
import os, re, secrets, shutil, sys, tempfile

SECRETS = ("CENTRIFUGO_HTTP_API_KEY", "CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY", "SESSION_SECRET")
example, target = sys.argv[1], sys.argv[2]


def fresh(_: object = None) -> str:
    return secrets.token_urlsafe(48)


if not os.path.exists(target):
    text = open(example).read()
    text = re.sub(r"=change-me$", lambda _: "=" + fresh(), text, flags=re.M)
    open(target, "w").write(text)
    print(f"env: wrote {target} with fresh random secrets", file=sys.stderr)
    raise SystemExit
text = open(target).read()
written = []
for name in SECRETS:
    line = re.compile(rf"^{name}=change-me[ \t]*$", re.M)
    if line.search(text):
        text = line.sub(lambda _: f"{name}={fresh()}", text)
        written.append(name)
    elif not re.search(rf"^[ \t]*(export[ \t]+)?{name}[ \t]*=", text, re.M) and not os.environ.get(name):
        text += ("" if text.endswith("\n") or not text else "\n") + f"{name}={fresh()}\n"
        written.append(name)
if written:
    # Beside it, then over it: the file is whole at every moment, with its mode kept.
    fd, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(target)), prefix=".env-")
    with os.fdopen(fd, "w") as out:
        out.write(text)
    shutil.copymode(target, temporary)
    os.replace(temporary, target)
    print(
        f"env: wrote fresh random secrets into {target} for {', '.join(written)} "
        "(it said change-me, or had none)",
        file=sys.stderr,
    )
PY
