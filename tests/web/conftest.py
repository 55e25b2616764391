"""A desk with its dashboard served on a free loopback port, and a small HTTP client for it."""

from __future__ import annotations

import html
import http.client
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import pytest

from bench.desk_seed import seed_roster
from helpdesk.app import App
from helpdesk.web.auth import link_url
from helpdesk.web.server import WebServer, dashboard_of
from tests.conftest import Clock


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str
    cookies: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        return self.headers.get("location", "")


@dataclass
class Browser:
    """Plain HTTP/1.1 against the server, with the cookie jar of one person."""

    port: int
    cookie: str = ""

    def request(
        self, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        sent = {"Cookie": self.cookie} if self.cookie else {}
        if body:
            sent["Content-Type"] = "application/x-www-form-urlencoded"
        sent.update(headers or {})
        conn.request(method, path, body=body.encode() if body else None, headers=sent)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        found = {k.lower(): v for k, v in response.getheaders()}
        cookies = [v for k, v in response.getheaders() if k.lower() == "set-cookie"]
        conn.close()
        for cookie in cookies:
            pair = cookie.split(";", 1)[0]
            if "=" in pair:
                self.cookie = "" if pair.endswith(('=""', "=")) else pair
        return Answer(response.status, found, text, cookies)

    def get(self, path: str) -> Answer:
        return self.request("GET", path)

    def post(self, path: str, body: str, headers: dict[str, str] | None = None) -> Answer:
        return self.request("POST", path, body, headers)

    def open_link(self, link: str) -> Answer:
        """What opening the link shows (a mail scanner does this much too)."""
        parts = urlsplit(link)
        return self.get(f"{parts.path}?{parts.query}")

    def follow_link(self, link: str) -> Answer:
        """Open the link and press its button, as a person does."""
        page = self.open_link(link)
        if page.status != 200:
            return page
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page.body))
        body = "&".join(f"{k}={quote(html.unescape(v), safe='')}" for k, v in fields.items())
        return self.post("/auth", body)


@dataclass
class Served:
    app: App
    server: WebServer
    clock: Clock

    def browser(self) -> Browser:
        return Browser(self.server.port)

    def link(self, email: str, next_path: str = "") -> str:
        """A sign-in link to this server (on its real port, which `[web] base_url` cannot know)."""
        base = f"http://127.0.0.1:{self.server.port}"
        return link_url(base, self.server.board.signer, email, now=self.clock(), next_path=next_path)

    def signed_in(self, email: str) -> Browser:
        browser = self.browser()
        answer = browser.follow_link(self.link(email))
        assert answer.status == 303, answer
        return browser


@pytest.fixture
def serve(make_app: Callable[..., App], clock: Clock) -> Iterator[Callable[..., Served]]:
    servers: list[WebServer] = []

    def start(**sections: dict[str, object]) -> Served:
        web = {"listen": "", **dict(sections.pop("web", {}))}
        app = make_app(web=web, **sections)
        with app.sessions() as session, session.begin():
            seed_roster(session)
        server = WebServer(dashboard_of(app, clock=clock), "127.0.0.1", 0)
        server.start()
        servers.append(server)
        return Served(app, server, clock)

    yield start
    for server in servers:
        server.stop()
