"""A private headless Chromium from the Debian package, run once per page with a fresh profile.

No browser is downloaded: `chromium` (Debian) is found on PATH, or the test is skipped loudly
(failed under CI=true). Each run gets its own --user-data-dir, talks to nothing but the URL it is
given (no background networking, component updates, sync or first-run pages), and is killed by
its own process id if it overstays.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.servers.common import ServerUnavailable

NAMES = ("chromium", "chromium-browser")
TIMEOUT = 120.0
WINDOW = "1440,1000"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
)


def chromium_binary() -> str:
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ServerUnavailable("no chromium on PATH (Debian package `chromium`; tools/ensure-test-servers.sh)")


class Chromium:
    def __init__(self, binary: str) -> None:
        self.binary = binary

    def _run(self, url: str, *extra: str, cwd: Path) -> str:
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            proc = subprocess.Popen(
                [self.binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={WINDOW}", *extra, url],
                cwd=cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            try:
                out, _ = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
            return out

    def screenshot(self, url: str, png: Path, *, height: int = 1000) -> Path:
        self._run(url, f"--screenshot={png}", f"--window-size=1440,{height}", cwd=png.parent)
        if not png.is_file():
            raise AssertionError(f"chromium wrote no screenshot of {url}")
        return png

    def dom(self, url: str, *, cwd: Path) -> str:
        return self._run(url, "--dump-dom", cwd=cwd)
