#!/usr/bin/env bash
# Runs Centrifugo, the backend and nginx in the foreground with the settings in .env;
# Ctrl-C stops all three.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CENTRIFUGO="$(scripts/centrifugo.sh)"

set -a
# shellcheck disable=SC1091
. ./.env
set +a

NGINX_CONF="$(python3 scripts/render_nginx.py .cache/nginx --port "${NGINX_PORT:-9000}" \
  --backend "${BACKEND_HOST:-127.0.0.1}:${BACKEND_PORT:-5000}" \
  --centrifugo "127.0.0.1:${CENTRIFUGO_HTTP_SERVER_PORT:-8000}")"

centrifugo_pid="" backend_pid="" nginx_pid=""
halt() { [ -z "$1" ] || { kill -TERM "$1" 2>/dev/null; wait "$1"; } || true; }
# The backend stops first, so that it can still publish `done` to the streams it ends, and
# nginx and Centrifugo still carry it to the browsers.
stop() {
  trap - INT TERM EXIT
  halt "$backend_pid"
  halt "$nginx_pid"
  halt "$centrifugo_pid"
}
trap stop INT TERM EXIT

# Centrifugo and nginx run in sessions of their own: Ctrl-C reaches them only through stop().
setsid "$CENTRIFUGO" --config centrifugo/config.json &
centrifugo_pid=$!
setsid nginx -p "$ROOT/.cache/nginx" -c "$NGINX_CONF" -g "daemon off;" &
nginx_pid=$!
.venv/bin/python -m backend &
backend_pid=$!

echo "run: chat at http://localhost:${NGINX_PORT:-9000} (Ctrl-C stops everything)" >&2
# Whichever stops first (a crash, or Ctrl-C) takes the other down with it.
wait -n
