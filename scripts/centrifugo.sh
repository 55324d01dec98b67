#!/usr/bin/env bash
# Finds Centrifugo v6 or gets it, at most one build per machine; prints the binary's path.
#
# Order: $CENTRIFUGO_BIN, a v6 `centrifugo` on PATH, the cached build, a build with
# `go install` (a few minutes, once), the official release archive (needs internet, no Go).
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

VERSION="6.9.1"
MODULE="github.com/centrifugal/centrifugo/v6"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The build is kept per machine (every clone shares it) and linked into the clone's
# git-ignored .cache/bin, so a fresh clone does not build again.
MACHINE_CACHE="${RELAYCHAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relaychat}/centrifugo-$VERSION"
LOCAL_BIN="$ROOT/.cache/bin"

say() { printf 'centrifugo: %s\n' "$*" >&2; }

version_of() { "$1" version 2>/dev/null | sed -n 's/^Centrifugo v\([0-9.]*\).*/\1/p'; }

use() {
  mkdir -p "$LOCAL_BIN"
  if [ "$1" != "$LOCAL_BIN/centrifugo" ]; then ln -sfn "$1" "$LOCAL_BIN/centrifugo"; fi
  echo "$1"
  exit 0
}

if [ -n "${CENTRIFUGO_BIN:-}" ]; then
  [ -x "$CENTRIFUGO_BIN" ] || { say "CENTRIFUGO_BIN=$CENTRIFUGO_BIN is not an executable"; exit 1; }
  say "using CENTRIFUGO_BIN=$CENTRIFUGO_BIN (v$(version_of "$CENTRIFUGO_BIN"))"
  echo "$CENTRIFUGO_BIN"
  exit 0
fi

if on_path="$(command -v centrifugo 2>/dev/null)"; then
  found="$(version_of "$on_path")"
  case "$found" in
    6.*)
      [ "$found" = "$VERSION" ] || say "warning: $on_path is v$found; this project is tested with v$VERSION"
      say "using $on_path (v$found)"
      echo "$on_path"
      exit 0
      ;;
    *) say "ignoring $on_path: it is v${found:-unknown}, not v6" ;;
  esac
fi

for cached in "$LOCAL_BIN/centrifugo" "$MACHINE_CACHE/centrifugo"; do
  if [ -x "$cached" ] && [ "$(version_of "$cached")" = "$VERSION" ]; then
    say "using the cached build $cached"
    use "$cached"
  fi
done

mkdir -p "$MACHINE_CACHE"
if command -v go >/dev/null 2>&1; then
  say "building Centrifugo v$VERSION from the Go module $MODULE into $MACHINE_CACHE"
  say "this happens once per machine and takes a few minutes..."
  started=$SECONDS
  # Same as `go install $MODULE@v$VERSION`, in two steps: download the module, then build
  # inside it. Unlike `go install pkg@version`, this does not ask the proxy for the module's
  # version list (a deprecation check), which some proxies and mirrors do not serve.
  if dir="$(cd /tmp && go mod download -json "$MODULE@v$VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')" \
      && [ -n "$dir" ] \
      && (cd "$dir" && go build -trimpath -ldflags "-X $MODULE/internal/build.Version=$VERSION" \
            -o "$MACHINE_CACHE/centrifugo" .) >&2; then
    say "built in $((SECONDS - started)) s"
    use "$MACHINE_CACHE/centrifugo"
  fi
  say "the Go build failed (output above); trying the release archive"
fi

case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) os="" ;; esac
case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch="" ;; esac
if [ -n "$os" ] && [ -n "$arch" ] && command -v curl >/dev/null 2>&1; then
  url="https://github.com/centrifugal/centrifugo/releases/download/v$VERSION/centrifugo_${VERSION}_${os}_${arch}.tar.gz"
  say "downloading $url"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if curl -fsSL --retry 2 --connect-timeout 10 -o "$tmp/centrifugo.tar.gz" "$url" \
      && tar -xzf "$tmp/centrifugo.tar.gz" -C "$tmp" centrifugo; then
    install -m 0755 "$tmp/centrifugo" "$MACHINE_CACHE/centrifugo"
    use "$MACHINE_CACHE/centrifugo"
  fi
  say "the download failed"
fi

cat >&2 <<MSG
centrifugo: could not get Centrifugo v$VERSION. Any one of these fixes it:
  - install Go >= 1.26 and run: GOBIN=$MACHINE_CACHE go install -ldflags "-X $MODULE/internal/build.Version=$VERSION" $MODULE@v$VERSION
  - download the release archive for your system from https://github.com/centrifugal/centrifugo/releases/tag/v$VERSION
    and put the binary on PATH, or set CENTRIFUGO_BIN=/path/to/centrifugo
MSG
exit 1
