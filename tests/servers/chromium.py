"""A private headless Chromium from the Debian package, driven over the DevTools protocol.

No browser is downloaded: `chromium` (Debian) is found on PATH, or the test is skipped loudly
(failed under CI=true). The browser gets a fresh --user-data-dir, talks to nothing but the pages
it is sent to (no background networking, component updates, sync or first-run pages), listens
for DevTools on a loopback port it picks itself (read from DevToolsActivePort in its profile),
and is stopped, or killed by its own process id, when the test ends. The protocol is JSON over
a websocket (websocket-client): navigate, click, read the DOM, capture a PNG.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

from tests.servers.common import ServerUnavailable

NAMES = ("chromium", "chromium-browser")
START_TIMEOUT = 60.0
STEP_TIMEOUT = 60.0
WIDTH = 1440
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
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def chromium_binary() -> str:
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise ServerUnavailable("no chromium on PATH (Debian package `chromium`; tools/ensure-test-servers.sh)")


class Chromium:
    """One headless browser with one tab; a context manager that stops it."""

    def __init__(self, binary: str) -> None:
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-profile-")
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._next_id = 0
        try:
            port = self._devtools_port()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                targets = json.load(answer)
            page = next(t for t in targets if t.get("type") == "page")
            # Chromium refuses DevTools websockets that name an Origin it was not told to allow.
            self.ws = websocket.create_connection(
                page["webSocketDebuggerUrl"], timeout=STEP_TIMEOUT, suppress_origin=True
            )
            self.call("Page.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self) -> int:
        marker = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerUnavailable(f"chromium exited at start with status {self.proc.returncode}")
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            time.sleep(0.1)
        raise ServerUnavailable("chromium did not open its DevTools port in time")

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        ident = self._next_id
        self.ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"DevTools {method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def open(self, url: str) -> None:
        """Navigate and wait until the page (after any redirects) has loaded."""
        self.call("Page.navigate", url=url)
        self.wait_loaded()

    def wait_loaded(self) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT
        time.sleep(0.2)
        while self.evaluate("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise AssertionError("the page did not finish loading")
            time.sleep(0.1)

    def click(self, selector: str) -> None:
        """Press a button as a person would (a DevTools call; the page itself runs no script)."""
        before = self.evaluate("location.href")
        self.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
        deadline = time.monotonic() + STEP_TIMEOUT
        while self.evaluate("location.href") == before and time.monotonic() < deadline:
            time.sleep(0.1)
        self.wait_loaded()

    def dom(self) -> str:
        return str(self.evaluate("document.documentElement.outerHTML"))

    def screenshot(self, png: Path, *, height: int) -> Path:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        data = self.call("Page.captureScreenshot", format="png")["data"]
        png.write_bytes(base64.b64decode(data))
        return png

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            try:
                self.call("Browser.close")
            except Exception:  # already gone: the process is reaped below either way
                pass
            ws.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
