"""Server-rendered pages: sign in, who am I, sign out. The review UI builds on these.

Templates ship inside the package (no CDN, no external font); every form carries the
session's CSRF token and every POST checks it before anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.session import Sessions, authenticate, check_csrf, origin
from lineage.actions import LedgerAction
from shuyu.auth import record_refusal, sign_in
from shuyu.errors import PermissionDenied, Unauthenticated
from shuyu.platform import Platform
from shuyu.users import whoami

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def _page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(TEMPLATES.get_template(template).render(**context), status_code=status)


def register(app: FastAPI, base: Platform, sessions: Sessions) -> None:
    def _session_or_fresh(request: Request):  # type: ignore[no-untyped-def]
        try:
            return sessions.read(request)
        except Unauthenticated:
            return None

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> Response:
        session = _session_or_fresh(request) or sessions.fresh()
        response = _page("login.html", csrf_token=session.csrf, name="", error=None)
        sessions.set(response, session)
        return response

    @app.post("/login", response_class=HTMLResponse, include_in_schema=False)
    def login(
        request: Request,
        name: str = Form(""),
        password: str = Form(""),
        csrf_token: str = Form(""),
    ) -> Response:
        session = _session_or_fresh(request)
        try:
            check_csrf(session, csrf_token)
        except PermissionDenied as exc:
            record_refusal(
                base.acting_as("anonymous"),
                LedgerAction.AUTH_REFUSED,
                f"user:{name}",
                {"why": "missing CSRF token", "from": origin(request)},
            )
            fresh = sessions.fresh()
            response = _page("login.html", 403, csrf_token=fresh.csrf, name=name, error=exc.message)
            sessions.set(response, fresh)
            return response
        try:
            user, epoch = sign_in(base, name, password, origin(request))
        except Unauthenticated as exc:
            assert session is not None
            return _page("login.html", 401, csrf_token=session.csrf, name=name, error=exc.message)
        redirect = RedirectResponse("/me", status_code=303)
        sessions.set(redirect, sessions.fresh(user.name, epoch))  # a new CSRF token per session
        return redirect

    @app.get("/me", response_class=HTMLResponse, include_in_schema=False)
    def me_page(request: Request) -> Response:
        try:
            user = authenticate(base, sessions, request)
        except Unauthenticated:  # not signed in, or the session ended: to the sign-in page
            return RedirectResponse("/login", status_code=303)
        session = _session_or_fresh(request)
        return _page(
            "me.html", me=whoami(base.acting_as(user)), csrf_token=session.csrf if session else ""
        )

    @app.post("/logout", include_in_schema=False)
    def logout(request: Request, csrf_token: str = Form("")) -> Response:
        session = _session_or_fresh(request)
        try:
            check_csrf(session, csrf_token)
        except PermissionDenied:
            record_refusal(
                base.acting_as("anonymous"),
                LedgerAction.AUTH_REFUSED,
                f"user:{session.name}" if session and session.name else "request",
                {"why": "missing CSRF token", "from": origin(request)},
            )
            raise
        response = RedirectResponse("/login", status_code=303)
        sessions.clear(response)
        return response
