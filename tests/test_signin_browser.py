"""The sign-in page in a real browser (Debian's chromium through Playwright) against a live
server: a wrong password shows one error, the right one lands on "who am I" in Chinese, the
cookie is out of JavaScript's reach, and signing out ends the session. Screenshots are saved
under tests/screenshots/ for people to look at."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from api.http import create_app
from shuyu.platform import Platform
from tests.identities import PASSWORD, PROJECT, TENANT, enrol

SHOTS = Path(__file__).resolve().parent / "screenshots"
pytestmark = pytest.mark.browser


@pytest.fixture
def live(granted: Platform) -> Iterator[str]:
    from shuyu.users import add_user

    enrol(granted, "li", "analyst", password=True)
    add_user(granted, "li", "analyst", tenant=TENANT, display_name="李明")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(granted.settings), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_sign_in_page_in_chromium(live: str) -> None:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--no-first-run"],
        )
        try:
            page = browser.new_page(locale="zh-CN")
            page.goto(f"{live}/me")
            assert page.url.endswith("/login"), "not signed in: sent to the sign-in page"
            page.screenshot(path=str(SHOTS / "signin-empty.png"))
            page.fill("#name", "li")
            page.fill("#password", "not the password")
            page.click("button[type=submit]")
            assert "name or password is wrong" in page.inner_text("[role=alert]")
            page.screenshot(path=str(SHOTS / "signin-wrong-password.png"))
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{live}/me")
            assert page.inner_text("#display-name") == "李明"
            assert page.inner_text("#tenant") == TENANT and PROJECT in page.inner_text("#projects")
            assert page.evaluate("document.cookie") == "", "the session cookie is HttpOnly"
            (cookie,) = page.context.cookies()
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            page.screenshot(path=str(SHOTS / "whoami.png"))
            page.click("button[type=submit]")  # 退出 sign out
            page.wait_for_url(f"{live}/login")
            page.goto(f"{live}/me")
            assert page.url.endswith("/login"), "signed out: the session is gone"
        finally:
            browser.close()
