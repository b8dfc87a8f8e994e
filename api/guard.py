"""What the HTTP server refuses before any route runs, and what it never says in an error.

- A body larger than `SHUYU_MAX_BODY_KB` is refused from its Content-Length before one byte of
  it is read; a chunked body is read only up to the limit, then refused.
- A request carrying the identity header twice is refused: a proxy that appends instead of
  replacing would otherwise let a client choose which of two identities a framework picks.
- Error messages never carry a host path: the platform home and other host folders are
  replaced by neutral names, and unexpected exceptions get one fixed sentence (the traceback
  goes to the server's log, for operators).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from shuyu.errors import ShuyuError

IDENTITY_HEADER = b"x-shuyu-user"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_body(code: str, message: str, fix: str | None = None) -> dict[str, Any]:
    return {"error": code, "message": message, "file": None, "field": None, "fix": fix}


class RequestGuard:
    """Pure ASGI middleware: it sees the headers and the body stream before FastAPI does."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = [(k.lower(), v) for k, v in scope.get("headers", [])]
        if sum(k == IDENTITY_HEADER for k, _ in headers) > 1:
            await _reply(
                send,
                400,
                error_body(
                    "invalid",
                    "the request carries the identity header X-Shuyu-User more than once",
                    "the authenticating proxy must replace the header, never append to it",
                ),
            )
            return
        lengths = [v for k, v in headers if k == b"content-length"]
        if lengths:
            try:
                declared = max(int(v) for v in lengths)
            except ValueError:
                await _reply(send, 400, error_body("invalid", "Content-Length is not a number"))
                return
            if declared > self.max_body:
                await self._too_large(send)
                return
            await self.app(scope, receive, send)
            return
        if not any(k == b"transfer-encoding" for k, _ in headers):
            await self.app(scope, receive, send)
            return
        # Chunked: read up to the limit, refuse beyond it, replay what was read otherwise.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_body:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await _reply(
            send,
            413,
            error_body(
                "too_large",
                f"the request body is larger than {self.max_body // 1024} KiB",
                "send smaller code files, or ask an operator about SHUYU_MAX_BODY_KB",
            ),
        )


async def _reply(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body, ensure_ascii=False).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class PathScrubber:
    """Replaces host folders (and the store's address) in error texts by neutral names,
    longest first."""

    def __init__(self, home: Path, *others: Path, store_url: str = "") -> None:
        pairs = {str(home): "$SHUYU_HOME", str(home.resolve()): "$SHUYU_HOME"}
        if store_url:
            pairs[store_url] = "the metadata store"
        for other in (*others, Path(tempfile.gettempdir())):
            pairs.setdefault(str(other), "<host folder>")
            pairs.setdefault(str(other.resolve()), "<host folder>")
        self.pairs = sorted(pairs.items(), key=lambda kv: -len(kv[0]))

    def text(self, value: str | None) -> str | None:
        if value is None:
            return None
        for host, neutral in self.pairs:
            value = value.replace(host, neutral)
        return value

    def error(self, exc: ShuyuError) -> dict[str, Any]:
        return {k: self.text(v) if isinstance(v, str) else v for k, v in exc.to_dict().items()}
