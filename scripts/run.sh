#!/usr/bin/env bash
# Runs Centrifugo and the backend in the foreground with the settings in .env; Ctrl-C stops both.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CENTRIFUGO="$(scripts/centrifugo.sh)"

set -a
# shellcheck disable=SC1091
. ./.env
set +a

centrifugo_pid="" backend_pid=""
# The backend stops first, so that it can still publish `done` to the streams it ends.
stop() {
  trap - INT TERM EXIT
  [ -z "$backend_pid" ] || { kill -TERM "$backend_pid" 2>/dev/null; wait "$backend_pid"; } || true
  [ -z "$centrifugo_pid" ] || { kill -TERM "$centrifugo_pid" 2>/dev/null; wait "$centrifugo_pid"; } || true
}
trap stop INT TERM EXIT

# Centrifugo runs in a session of its own: Ctrl-C reaches it only through stop(), after the backend.
setsid "$CENTRIFUGO" --config centrifugo/config.json &
centrifugo_pid=$!
.venv/bin/python -m backend &
backend_pid=$!

echo "run: Centrifugo on 127.0.0.1:${CENTRIFUGO_HTTP_SERVER_PORT:-8000}," \
  "API on http://${BACKEND_HOST:-127.0.0.1}:${BACKEND_PORT:-5000}/api (Ctrl-C stops both)" >&2
# Whichever stops first (a crash, or Ctrl-C) takes the other down with it.
wait -n
