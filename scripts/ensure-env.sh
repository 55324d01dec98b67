#!/usr/bin/env bash
# Writes .env (or the file given) from .env.example with fresh random secrets, unless it exists.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${1:-$ROOT/.env}"
if [ -f "$TARGET" ]; then exit 0; fi
umask 077
python3 - "$ROOT/.env.example" "$TARGET" <<'PY'
import re, secrets, sys
text = open(sys.argv[1]).read()
text = re.sub(r"=change-me$", lambda _: "=" + secrets.token_urlsafe(48), text, flags=re.M)
open(sys.argv[2], "w").write(text)
PY
echo "env: wrote $TARGET with fresh random secrets" >&2
