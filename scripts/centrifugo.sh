#!/usr/bin/env bash
# Finds Centrifugo or gets it, one build per machine (concurrent runs wait for it); prints the
# binary's path.
#
# Order: $CENTRIFUGO_BIN; a Centrifugo v6 or v5.4+ on PATH; a cached build; a build of v6.9.1
# from its Go module; v6.9.1's release archive; a build of v5.4.9 from its Go module (its whole
# dependency set is on the public Go module proxy, where v6.9.1's is not always). The launcher
# (scripts/centrifugo_launch.py) runs either version with the one v6 configuration.
# CENTRIFUGO_VERSION=5.4.9 (or 6.9.1) gets that version only, from the cache or a Go build,
# and leaves the clone's link alone: for runs of the suite against the other version.
# Progress goes to stderr; only the path goes to stdout.
set -euo pipefail

V6="6.9.1"
V6_MODULE="github.com/centrifugal/centrifugo/v6"
V5="5.4.9"
V5_MODULE="github.com/centrifugal/centrifugo/v5"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Builds are kept per machine (every clone shares them) and linked into the clone's
# git-ignored .cache/bin, so a fresh clone does not build again.
CACHE_ROOT="${RELAYCHAT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/relaychat}"
LOCAL_BIN="$ROOT/.cache/bin"
# The longest wait for another run's build of the same version (one takes ~3-11 minutes).
BUILD_WAIT="${CENTRIFUGO_BUILD_WAIT_SECONDS:-1800}"
case "$BUILD_WAIT" in
  '' | *[!0-9]*) printf 'centrifugo: CENTRIFUGO_BUILD_WAIT_SECONDS=%s is not a number of seconds\n' "$BUILD_WAIT" >&2; exit 1 ;;
esac

say() { printf 'centrifugo: %s\n' "$*" >&2; }
failures=()
failed() {
  failures+=("$*")
  say "$*"
}

version_of() { "$1" version 2>/dev/null | sed -n 's/^Centrifugo v\([0-9.]*\).*/\1/p'; }

# Versions this project runs: any v6, or v5 from 5.4 on (its configuration is translated).
supported() {
  case "$1" in
    6.*) return 0 ;;
    5.*) [ "$(printf '%s\n' "$1" | cut -d. -f2)" -ge 4 ] 2>/dev/null ;;
    *) return 1 ;;
  esac
}

WANT="${CENTRIFUGO_VERSION:-}"

use() {
  mkdir -p "$LOCAL_BIN"
  if [ -z "$WANT" ] && [ "$1" != "$LOCAL_BIN/centrifugo" ]; then ln -sfn "$1" "$LOCAL_BIN/centrifugo"; fi
  echo "$1"
  exit 0
}

# --- 1. CENTRIFUGO_BIN -------------------------------------------------------------------
if [ -n "${CENTRIFUGO_BIN:-}" ]; then
  [ -x "$CENTRIFUGO_BIN" ] || { say "CENTRIFUGO_BIN=$CENTRIFUGO_BIN is not an executable"; exit 1; }
  found="$(version_of "$CENTRIFUGO_BIN")"
  if [ -z "$found" ]; then
    say "warning: CENTRIFUGO_BIN does not say its version (\`$CENTRIFUGO_BIN version\`); this project runs v6 or v5.4+"
  elif ! supported "$found"; then
    say "warning: CENTRIFUGO_BIN is v$found; this project runs v6 or v5.4+"
  fi
  say "using CENTRIFUGO_BIN=$CENTRIFUGO_BIN ($([ -n "$found" ] && echo "v$found" || echo "version unknown"))"
  echo "$CENTRIFUGO_BIN"
  exit 0
fi

# --- one version asked for ----------------------------------------------------------------
if [ -n "$WANT" ]; then
  case "$WANT" in
    "$V6") module="$V6_MODULE" ;;
    "$V5") module="$V5_MODULE" ;;
    *) say "CENTRIFUGO_VERSION=$WANT: this script gets $V6 or $V5"; exit 1 ;;
  esac
  cached="$CACHE_ROOT/centrifugo-$WANT/centrifugo"
  if [ -x "$cached" ] && [ "$(version_of "$cached")" = "$WANT" ]; then
    say "using the cached build $cached (v$WANT)"
    use "$cached"
  fi
  WANT_BUILD=1
fi

# --- 2. PATH -----------------------------------------------------------------------------
if [ -z "$WANT" ] && on_path="$(command -v centrifugo 2>/dev/null)"; then
  found="$(version_of "$on_path")"
  if supported "$found"; then
    [ "$found" = "$V6" ] || [ "$found" = "$V5" ] \
      || say "warning: $on_path is v$found; this project is tested with v$V6 and v$V5"
    say "using $on_path (v$found)"
    echo "$on_path"
    exit 0
  fi
  say "ignoring $on_path: $([ -n "$found" ] && echo "it is v$found" || echo "it does not say its version"), not v6 or v5.4+"
fi

# --- 3. a cached build -------------------------------------------------------------------
for cached in "$LOCAL_BIN/centrifugo" "$CACHE_ROOT/centrifugo-$V6/centrifugo" \
  "$CACHE_ROOT/centrifugo-$V5/centrifugo"; do
  if [ -z "$WANT" ] && [ -x "$cached" ]; then
    found="$(version_of "$cached")"
    if [ "$found" = "$V6" ] || [ "$found" = "$V5" ]; then
      say "using the cached build $cached (v$found)"
      use "$cached"
    fi
  fi
done

# Downloads MODULE@VERSION into the module cache; prints its directory.
module_dir() {
  local json
  json="$(cd /tmp && go mod download -json "$1@$2" 2>&1)" || {
    printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)"$/\1/p' | sed 's/\\n.*//' >&2
    return 1
  }
  printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

# Builds MODULE at VERSION into the machine cache, the way `go install MODULE@VERSION` would,
# in two steps: download the module, then build inside it. Unlike `go install pkg@version`,
# this does not ask the proxy for the module's version list (a deprecation check), which the
# proxy does not always serve. PROBE, if given, is one dependency to fetch first: when the
# proxy refuses it, the build would fail a minute later, so it is not started.
go_build() {
  local module="$1" version="$2" probe="${3:-}" dir dep out started partial
  out="$CACHE_ROOT/centrifugo-$version"
  # One build of a version at a time on this machine (where flock is): another clone's run may
  # be building it now (they share the cache). Wait for it, then take what it built; but not
  # for ever (CENTRIFUGO_BUILD_WAIT_SECONDS): a run that hangs must not hang every other.
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$out/.build.lock"
    if ! flock -n 9; then
      say "another run on this machine is building v$version; waiting for it (at most $BUILD_WAIT s)..."
      if ! flock -w "$BUILD_WAIT" 9; then
        exec 9>&-
        failed "Go build of v$version: another run held its lock $out/.build.lock for over $BUILD_WAIT s (CENTRIFUGO_BUILD_WAIT_SECONDS; stop that run, or wait longer)"
        return 1
      fi
    fi
    if [ -x "$out/centrifugo" ] && [ "$(version_of "$out/centrifugo")" = "$version" ]; then
      say "using the build another run has just made: $out/centrifugo (v$version)"
      use "$out/centrifugo"
    fi
  fi
  if ! dir="$(module_dir "$module" "v$version" 2>"$out.err")" || [ -z "$dir" ]; then
    failed "Go build of v$version: the Go module proxy does not serve $module@v$version: $(cat "$out.err")"
    return 1
  fi
  if [ -n "$probe" ]; then
    dep="$(sed -n "s|^[[:space:]]*$probe \(v[^ ]*\).*|\1|p" "$dir/go.mod" | head -1)"
    if [ -n "$dep" ] && ! module_dir "$probe" "$dep" >/dev/null 2>"$out.err"; then
      failed "Go build of v$version: the Go module proxy does not serve its dependency $probe@$dep: $(cat "$out.err")"
      return 1
    fi
  fi
  say "building Centrifugo v$version from the Go module $module into $out"
  say "this happens once per machine (about 3 minutes on 2 cores with empty Go caches)..."
  started=$SECONDS
  partial="$out/centrifugo.partial.$$"
  if ! (cd "$dir" && go build -trimpath -ldflags "-X $module/internal/build.Version=$version" \
    -o "$partial" .) >"$out.err" 2>&1; then
    rm -f "$partial"
    cat "$out.err" >&2
    failed "Go build of v$version failed (output above; last line: $(tail -1 "$out.err"))"
    return 1
  fi
  # Checked: this runs where `set -e` does not act (go_build ... || true).
  if ! mv -f "$partial" "$out/centrifugo"; then
    rm -f "$partial"
    failed "Go build of v$version: its binary could not be put in place as $out/centrifugo"
    return 1
  fi
  say "built v$version in $((SECONDS - started)) s"
  use "$out/centrifugo"
}

if [ -n "${WANT_BUILD:-}" ]; then
  mkdir -p "$CACHE_ROOT/centrifugo-$WANT"
  go_build "$module" "$WANT" || true
  printf 'centrifugo: could not get v%s:\n' "$WANT" >&2
  printf '  - %s\n' "${failures[@]}" >&2
  exit 1
fi

# --- 4. a Go build of v6 -----------------------------------------------------------------
mkdir -p "$CACHE_ROOT/centrifugo-$V6" "$CACHE_ROOT/centrifugo-$V5"
have_go=""
if command -v go >/dev/null 2>&1; then
  have_go=1
  go_build "$V6_MODULE" "$V6" github.com/centrifugal/centrifuge || true
else
  failed "Go build: no \`go\` on PATH (Go >= 1.26 builds v$V6, >= 1.23 builds v$V5)"
fi

# --- 5. v6's release archive -------------------------------------------------------------
case "$(uname -s)" in Linux) os=linux ;; Darwin) os=darwin ;; *) os="" ;; esac
case "$(uname -m)" in x86_64 | amd64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch="" ;; esac
url="https://github.com/centrifugal/centrifugo/releases/download/v$V6/centrifugo_${V6}_${os}_${arch}.tar.gz"
if [ -z "$os" ] || [ -z "$arch" ]; then
  failed "release archive: no build for $(uname -s)/$(uname -m)"
elif ! command -v curl >/dev/null 2>&1; then
  failed "release archive: no \`curl\` on PATH"
else
  say "downloading $url"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  if error="$(curl -fsSL --retry 1 --connect-timeout 10 -o "$tmp/centrifugo.tar.gz" "$url" 2>&1)" \
    && tar -xzf "$tmp/centrifugo.tar.gz" -C "$tmp" centrifugo; then
    # Into place in one step: another run may be starting the cached binary meanwhile.
    install -m 0755 "$tmp/centrifugo" "$CACHE_ROOT/centrifugo-$V6/centrifugo.partial.$$"
    mv -f "$CACHE_ROOT/centrifugo-$V6/centrifugo.partial.$$" "$CACHE_ROOT/centrifugo-$V6/centrifugo"
    use "$CACHE_ROOT/centrifugo-$V6/centrifugo"
  fi
  failed "release archive: $url could not be downloaded: $(printf '%s' "$error" | tail -1)"
fi

# --- 6. a Go build of v5.4.9 -------------------------------------------------------------
if [ -n "$have_go" ]; then
  say "Centrifugo v$V6 cannot be had here; building v$V5, which this project runs too"
  go_build "$V5_MODULE" "$V5" || true
fi

{
  echo "centrifugo: could not get Centrifugo. What was tried:"
  printf '  - %s\n' "${failures[@]}"
  cat <<MSG
Any one of these fixes it:
  - set CENTRIFUGO_BIN=/path/to/centrifugo (v6, or v5.4 and later)
  - put a Centrifugo v6 or v5.4+ binary on PATH
  - let Go (>= 1.26) reach a Go module proxy that serves $V6_MODULE@v$V6 and its dependencies,
    or $V5_MODULE@v$V5 (Go >= 1.23), then run this again
  - download the release archive from https://github.com/centrifugal/centrifugo/releases/tag/v$V6
MSG
} >&2
exit 1
