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

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

"$CENTRIFUGO" --config centrifugo/config.json &
pids+=($!)
.venv/bin/python -m backend &
pids+=($!)

echo "run: Centrifugo on 127.0.0.1:${CENTRIFUGO_HTTP_SERVER_PORT:-8000}," \
  "API on http://${BACKEND_HOST:-127.0.0.1}:${BACKEND_PORT:-5000}/api (Ctrl-C stops both)" >&2
# Whichever stops first (a crash, or Ctrl-C) takes the other down with it.
wait -n
