"""The dashboard as an ASGI application (Starlette): routes, sign-in and sign-out, security headers.

Every page but sign-in needs a session; without one a page answers 303 to the sign-in page and
shows nothing. Every response carries a Content-Security-Policy that allows no script at all and
styles and images from this site only, refuses framing (frame-ancestors and X-Frame-Options, for
browsers that know only the older header), sends a Referer to this site only (a sign-in link must
not leak to another through one; "no-referrer" would also make browsers send `Origin: null` with
our own forms, which the Origin check must refuse) and is not stored by caches (the pages hold mail). Cookies are HttpOnly and SameSite=Strict,
so no other site can make a signed-in browser send a form here; forms are checked for an Origin
of this site besides.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment
from sqlalchemy.orm import Session, sessionmaker
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpdesk.settings import Settings
from helpdesk.web.auth import (
    COOKIE,
    PER_ADDRESS,
    PER_CLIENT,
    RateLimit,
    Signer,
    issued_at,
    link_url,
    safe_next,
)
from helpdesk.web.config import LINK_LIFETIME
from helpdesk.web.render import HERE
from helpdesk.web.render import templates as load_templates
from models.outbox import OutboxKind
from notify.compose import Draft
from notify.outbox import enqueue
from notify.render import Renderer
from tickets.sign_in import Viewer, end_session, forget_sessions, session_is_open, use_link, viewer

log = logging.getLogger("helpdesk.web")

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
MAX_FORM = 4096  # bytes of a sign-in or sign-out form


class SecurityHeaders:
    """Adds the headers above to every response; no-store to all but the static files; and the
    time the server took in `Server-Timing` (what bench/web_pages.py measures)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = str(scope.get("path", "")).startswith("/static/")
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != b"cache-control"]
                headers.extend(SECURITY_HEADERS)
                headers.append((b"cache-control", b"public, max-age=3600" if static else b"no-store"))
                took = (time.perf_counter() - started) * 1000
                headers.append((b"server-timing", f"app;dur={took:.1f}".encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class Dashboard:
    """What the pages share: settings, the database, the clock, the signer and the templates."""

    settings: Settings
    sessions: sessionmaker[Session]  # for the few writes: link uses, sign-out, sign-in mail
    readers: sessionmaker[Session]
    clock: Callable[[], datetime]
    wake_sender: Callable[[], None] = lambda: None
    ready: Callable[[], dict[str, bool]] = field(default_factory=lambda: dict)
    models_dir: Path | None = None
    signer: Signer = field(init=False)
    templates: Environment = field(init=False)
    mail: Renderer = field(init=False)  # the sign-in mail, in the language of whoever asked
    by_address: RateLimit = field(default_factory=lambda: RateLimit(PER_ADDRESS))
    by_client: RateLimit = field(default_factory=lambda: RateLimit(PER_CLIENT))

    def __post_init__(self) -> None:
        self.signer = Signer(self.settings.identity.secret)
        self.templates = load_templates()
        self.mail = Renderer()

    def link(self, email: str, next_path: str = "") -> str:
        return link_url(self.settings.web.url, self.signer, email, now=self.clock(), next_path=next_path)

    def page(self, request: Request, name: str, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(name).render(
            request_path=request.url.path,
            refresh=int(self.settings.web.refresh),
            desk=self.settings.identity.address,
            **context,
        )
        return HTMLResponse(html, status_code=int(context.get("status", 200)))

    def signed_in(self, request: Request) -> Viewer | None:
        """The person whose open session the request's cookie names, if any."""
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        now = self.clock()
        claim = self.signer.read_session(value, now=now, lifetime=self.settings.web.session_lifetime)
        if claim is None:
            return None
        since = now - timedelta(seconds=self.settings.web.session_lifetime)
        with self.readers() as session:
            if not session_is_open(session, claim.nonce, claim.email, since=since):
                return None
            return viewer(session, claim.email)


Handler = Callable[[Request, Viewer, Dashboard], Response]


def guarded(board: Dashboard, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page that needs a session: without one, a redirect to sign in and nothing else."""

    async def endpoint(request: Request) -> Response:
        who = await run_in_threadpool(board.signed_in, request)
        if who is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/sign-in?next={quote(target, safe='/')}", status_code=303)
        return await run_in_threadpool(handler, request, who, board)

    return endpoint


async def _form(request: Request) -> dict[str, str] | None:
    """A small urlencoded form from this site, or None (too big, or posted from elsewhere)."""
    # A browser names the page a form was sent from (an opaque "null" for a sandboxed frame,
    # which is how another site would hide itself): only this site's own pages may post here.
    origin = request.headers.get("origin")
    if origin is not None and origin.rstrip("/") != _origin_of(request):
        return None
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            return None
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items() if v}


def _origin_of(request: Request) -> str:
    return f"{request.url.scheme}://{request.url.netloc}"


def sign_in_page(board: Dashboard) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        next_path = safe_next(request.query_params.get("next"))
        if request.method == "GET":
            return board.page(request, "sign_in.html.j2", next_path=next_path, sent=False)
        form = await _form(request)
        if form is None:
            return Response("Bad request", status_code=400)
        email = form.get("email", "").strip().lower()[:320]
        client = request.client.host if request.client else "?"
        if not board.by_client.allow(client) or not board.by_address.allow(email):
            log.warning("SIGN-IN refused: too many links asked for from %s", client)
            return board.page(
                request, "sign_in.html.j2", next_path=next_path, sent=False, limited=True, status=429
            )
        # The same answer whoever asked, and as fast: the roster is nobody's business. The lookup
        # and the mail happen after the answer has gone.
        response = board.page(request, "sign_in.html.j2", next_path=next_path, sent=True)
        if "@" in email:
            response.background = BackgroundTask(_mail_link, board, email, safe_next(form.get("next")))
        return response

    return endpoint


def _mail_link(board: Dashboard, email: str, next_path: str) -> None:
    now = board.clock()
    with board.sessions() as session, session.begin():
        who = viewer(session, email)
        if who is None:
            log.info("SIGN-IN link asked for an address not on the roster; nothing sent")
            return
        context = {
            "person": who.name,
            "link": board.link(who.email, next_path),
            "minutes": int(LINK_LIFETIME // 60),
            "desk": board.settings.identity.address,
        }
        draft = Draft(
            to=((who.name, who.email),),
            subject=board.mail.render("sign_in_subject", who.language, **context).strip(),
            body=board.mail.render("sign_in", who.language, **context),
            language=board.mail.language_for(who.language),
            automatic=False,
            generated=True,
        )
        enqueue(
            session, board.settings.identity, board.settings.outgoing, draft, kind=OutboxKind.SIGN_IN, now=now
        )
    log.info("SIGN-IN link mailed to %s", who.email)
    board.wake_sender()


def link_page(board: Dashboard) -> Callable[[Request], Awaitable[Response]]:
    """GET shows the link's page with a button; only its POST uses the link. Mail scanners and
    link previews open links (GET) before people do: a link that a GET used up would reach its
    owner already spent. The POST must come from this site, so another site cannot sign a
    visitor in as someone else either."""

    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            return _confirm(board, request)
        form = await _form(request)
        if form is None:
            return Response("Bad request", status_code=400)
        return await run_in_threadpool(_use_link, board, request, form.get("t", ""), form.get("next", ""))

    return endpoint


def _refused(board: Dashboard, request: Request) -> Response:
    return board.page(request, "sign_in.html.j2", next_path="/queue", sent=False, expired=True, status=403)


def _confirm(board: Dashboard, request: Request) -> Response:
    token = request.query_params.get("t", "")
    claim = board.signer.read_link(token, now=board.clock())
    if claim is None:
        return _refused(board, request)
    return board.page(
        request,
        "confirm.html.j2",
        title="Sign in",
        email=claim.email,
        token=token,
        next_path=safe_next(request.query_params.get("next")),
    )


def _use_link(board: Dashboard, request: Request, token: str, next_path: str) -> Response:
    now = board.clock()
    claim = board.signer.read_link(token, now=now)
    refused = _refused(board, request)
    if claim is None:
        return refused
    with board.sessions() as session, session.begin():
        who = viewer(session, claim.email)
        if who is None or not use_link(session, claim.nonce, claim.email, now=now):
            log.warning("SIGN-IN link refused: used before, or %s is not on the roster", claim.email)
            return refused
        # Uses older than any link or session could be are kept no longer.
        forget_sessions(
            session, before=now - timedelta(seconds=board.settings.web.session_lifetime + LINK_LIFETIME)
        )
    log.info("SIGNED IN %s as %s (link of %s)", who.email, who.role.value, issued_at(claim).isoformat())
    response = RedirectResponse(safe_next(next_path), status_code=303)
    response.set_cookie(
        COOKIE,
        board.signer.session_cookie(who.email, claim.nonce, now=now),
        max_age=int(board.settings.web.session_lifetime),
        httponly=True,
        samesite="strict",
        secure=board.settings.web.secure_cookies or request.url.scheme == "https",
        path="/",
    )
    return response


def sign_out(board: Dashboard) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if await _form(request) is None:
            return Response("Bad request", status_code=400)
        value = request.cookies.get(COOKIE, "")
        claim = board.signer.read_session(
            value, now=board.clock(), lifetime=board.settings.web.session_lifetime
        )
        if claim is not None:
            await run_in_threadpool(_end, board, claim.nonce)
            log.info("SIGNED OUT %s", claim.email)
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return endpoint


def _end(board: Dashboard, nonce: str) -> None:
    with board.sessions() as session, session.begin():
        end_session(session, nonce, now=board.clock())


def build(board: Dashboard) -> ASGIApp:
    from helpdesk.web import ops, pages

    routes = [
        Route("/", lambda request: RedirectResponse("/queue", status_code=303)),
        Route("/sign-in", sign_in_page(board), methods=["GET", "POST"]),
        Route("/auth", link_page(board), methods=["GET", "POST"]),
        Route("/sign-out", sign_out(board), methods=["POST"]),
        *(Route(path, guarded(board, handler)) for path, handler in pages.PAGES),
        *ops.routes(board),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return SecurityHeaders(Starlette(routes=routes))
