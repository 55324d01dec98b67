"""scripts/centrifugo.sh with a stand-in for Go: what two runs at once do on a new machine."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

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


class Scene:
    """A clone of the script with the stand-in Go and only the tools it needs on PATH."""

    def __init__(self, tmp_path: Path) -> None:
        if shutil.which("flock") is None:
            missing_component("flock is missing: apt-get install util-linux")
        self.tmp = tmp_path
        self.root = tmp_path / "clone"
        (self.root / "scripts").mkdir(parents=True)
        shutil.copy(ROOT / "scripts" / "centrifugo.sh", self.root / "scripts" / "centrifugo.sh")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "go").write_text(FAKE_GO)
        (bin_dir / "go").chmod(0o755)
        module = tmp_path / "module"
        module.mkdir()
        (module / "go.mod").write_text("module github.com/centrifugal/centrifugo/v6\n")
        self.builds, self.release = tmp_path / "builds", tmp_path / "release"
        # Only the tools the script and the stand-in use: no Centrifugo this machine may have
        # on its PATH, no curl (no release archive), as on a new machine.
        tools = tmp_path / "tools"
        tools.mkdir()
        for tool in TOOLS:
            found = shutil.which(tool)
            assert found is not None, tool
            (tools / tool).symlink_to(found)
        self.env = {
            "PATH": f"{bin_dir}:{tools}",
            "HOME": str(tmp_path / "home"),
            "RELAYCHAT_CACHE_DIR": str(tmp_path / "cache"),
            "FAKE_MODULE_DIR": str(module),
            "FAKE_BUILDS": str(self.builds),
            "FAKE_RELEASE": str(self.release),
        }
        self.binary = tmp_path / "cache" / "centrifugo-6.9.1" / "centrifugo"

    def start(self, name: str, **env: str) -> tuple[subprocess.Popen[bytes], Path]:
        said = self.tmp / f"{name}.err"
        with said.open("wb") as err:
            command = ["bash", str(self.root / "scripts" / "centrifugo.sh")]
            return subprocess.Popen(
                command, env={**self.env, **env}, stdout=subprocess.PIPE, stderr=err
            ), said


def test_a_second_run_waits_for_the_build_under_way_and_takes_it(tmp_path: Path) -> None:
    """A docs walkthrough: several clones' first runs at once built Centrifugo at once into
    one file; one's `mv` failed, unseen, and it still said "built" (another's binary happened to
    be there). Now the second waits for the first's build and takes it."""
    scene = Scene(tmp_path)
    first, _ = scene.start("first")
    wait_until(scene.builds.exists, "the first run's build to start")
    second, second_said = scene.start("second")
    wait_until(
        lambda: (
            "is building v6.9.1; waiting" in second_said.read_text()
            or len(scene.builds.read_text().splitlines()) > 1
        ),
        "the second run to wait, or to build too",
    )
    scene.release.touch()  # the first build ends
    outputs = [run.communicate(timeout=20)[0].decode().strip() for run in (first, second)]

    binary = scene.binary
    assert scene.builds.read_text().splitlines() == ["started"]  # one build
    assert (first.returncode, second.returncode) == (0, 0), second_said.read_text()
    assert outputs == [str(binary), str(binary)]
    assert "using the build another run has just made" in second_said.read_text()
    assert subprocess.run([binary, "version"], capture_output=True, text=True).stdout.startswith(
        "Centrifugo v6.9.1"
    )
    assert sorted(p.name for p in binary.parent.iterdir()) == [".build.lock", "centrifugo"]


def test_a_run_waits_for_another_run_s_build_only_so_long(tmp_path: Path) -> None:
    """A run whose build hangs held every other run on the machine for ever (flock without a
    limit): now they wait CENTRIFUGO_BUILD_WAIT_SECONDS, then say why they gave up."""
    scene = Scene(tmp_path)
    first, _ = scene.start("first")
    try:
        wait_until(scene.builds.exists, "the first run's build to start")
        second, said = scene.start(
            "second", CENTRIFUGO_VERSION="6.9.1", CENTRIFUGO_BUILD_WAIT_SECONDS="1"
        )
        output = second.communicate(timeout=20)[0].decode()
        assert second.returncode == 1
        assert output == ""
        assert (
            "another run held its lock "
            f"{scene.binary.parent}/.build.lock for over 1 s (CENTRIFUGO_BUILD_WAIT_SECONDS"
        ) in said.read_text()
        assert scene.builds.read_text().splitlines() == ["started"]  # it built nothing itself
    finally:
        scene.release.touch()
        first.communicate(timeout=20)
    assert first.returncode == 0


def test_a_build_wait_that_is_not_a_number_is_refused(tmp_path: Path) -> None:
    scene = Scene(tmp_path)
    run, said = scene.start("run", CENTRIFUGO_BUILD_WAIT_SECONDS="ten")
    try:
        run.communicate(timeout=20)
    finally:  # were it to build after all, its stand-in Go would wait for ever
        scene.release.touch()
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 1
    assert "CENTRIFUGO_BUILD_WAIT_SECONDS=ten is not a number of seconds" in said.read_text()
    assert not scene.builds.exists()


@pytest.mark.parametrize(
    ("stand_in", "said"),
    [
        ("#!/bin/sh\n", "warning: CENTRIFUGO_BIN does not say its version ("),
        ('#!/bin/sh\necho "Centrifugo v4.1.0"\n', "warning: CENTRIFUGO_BIN is v4.1.0; "),
    ],
)
def test_a_centrifugo_bin_of_another_version_is_named_in_words(
    tmp_path: Path, stand_in: str, said: str
) -> None:
    """Probe: `CENTRIFUGO_BIN=/bin/true` was said to be "vunknown"."""
    scene = Scene(tmp_path)
    binary = tmp_path / "some-centrifugo"
    binary.write_text(stand_in)
    binary.chmod(0o755)
    run, err = scene.start("run", CENTRIFUGO_BIN=str(binary))
    out, _ = run.communicate(timeout=20)
    assert run.returncode == 0
    assert out.decode().strip() == str(binary)  # used all the same: the tests say what fails
    text = err.read_text()
    assert said in text
    assert "vunknown" not in text
