"""scripts/centrifugo.sh with a stand-in for Go: what two runs at once do on a new machine."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.processes import missing_component

ROOT = Path(__file__).resolve().parents[2]

# `go mod download -json M@V` names a module directory; `go build -o OUT .` says it started (a
# line in $FAKE_BUILDS), waits until the test lets it finish, then writes a "Centrifugo" there.
FAKE_GO = """#!/bin/sh
case "$1" in
  mod) printf '{\\n\\t"Dir": "%s",\\n}\\n' "$FAKE_MODULE_DIR" ;;
  build)
    while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done
    echo started >> "$FAKE_BUILDS"
    while [ ! -e "$FAKE_RELEASE" ]; do sleep 0.05; done
    printf '#!/bin/sh\\necho "Centrifugo v6.9.1 (Go version: a stand-in)"\\n' > "$out"
    chmod +x "$out" ;;
esac
"""


TOOLS = (
    "bash", "sh", "sed", "cut", "head", "tail", "cat", "mkdir", "mv", "rm", "ln", "dirname",
    "flock", "chmod", "sleep", "uname", "mktemp",
)  # fmt: skip


def wait_until(condition: object, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_a_second_run_waits_for_the_build_under_way_and_takes_it(tmp_path: Path) -> None:
    """A docs walkthrough: several clones' first runs at once built Centrifugo at once into
    one file; one's `mv` failed, unseen, and it still said "built" (another's binary happened to
    be there). Now the second waits for the first's build and takes it."""
    if shutil.which("flock") is None:
        missing_component("flock is missing: apt-get install util-linux")
    root = tmp_path / "clone"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "centrifugo.sh", root / "scripts" / "centrifugo.sh")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "go").write_text(FAKE_GO)
    (bin_dir / "go").chmod(0o755)
    module = tmp_path / "module"
    module.mkdir()
    (module / "go.mod").write_text("module github.com/centrifugal/centrifugo/v6\n")
    builds, release = tmp_path / "builds", tmp_path / "release"
    # Only the tools the script and the stand-in use: no Centrifugo this machine may have on its
    # PATH, no curl (no release archive), as on a new machine.
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found is not None, tool
        (tools / tool).symlink_to(found)
    path = f"{bin_dir}:{tools}"
    env = {
        "PATH": path,
        "HOME": str(tmp_path / "home"),
        "RELAYCHAT_CACHE_DIR": str(tmp_path / "cache"),
        "FAKE_MODULE_DIR": str(module),
        "FAKE_BUILDS": str(builds),
        "FAKE_RELEASE": str(release),
    }

    def start(name: str) -> tuple[subprocess.Popen[bytes], Path]:
        said = tmp_path / f"{name}.err"
        with said.open("wb") as err:
            command = ["bash", str(root / "scripts" / "centrifugo.sh")]
            return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=err), said

    first, _ = start("first")
    wait_until(builds.exists, "the first run's build to start")
    second, second_said = start("second")
    wait_until(
        lambda: (
            "is building v6.9.1; waiting" in second_said.read_text()
            or len(builds.read_text().splitlines()) > 1
        ),
        "the second run to wait, or to build too",
    )
    release.touch()  # the first build ends
    outputs = [run.communicate(timeout=20)[0].decode().strip() for run in (first, second)]

    binary = tmp_path / "cache" / "centrifugo-6.9.1" / "centrifugo"
    assert builds.read_text().splitlines() == ["started"]  # one build
    assert (first.returncode, second.returncode) == (0, 0), second_said.read_text()
    assert outputs == [str(binary), str(binary)]
    assert "using the build another run has just made" in second_said.read_text()
    assert subprocess.run([binary, "version"], capture_output=True, text=True).stdout.startswith(
        "Centrifugo v6.9.1"
    )
    assert sorted(p.name for p in binary.parent.iterdir()) == [".build.lock", "centrifugo"]
