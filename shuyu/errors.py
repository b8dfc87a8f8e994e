"""One exception hierarchy. Only messages written here reach users; the shells map them.

Every error says what went wrong, where (file and field when there is one) and what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ShuyuError(Exception):
    message: str
    file: str | None = None
    field: str | None = None
    fix: str | None = None

    code = "error"
    http_status = 400

    def __str__(self) -> str:
        where = ""
        if self.file and self.field:
            where = f"{self.file}: {self.field}: "
        elif self.file:
            where = f"{self.file}: "
        elif self.field:
            where = f"{self.field}: "
        text = f"{where}{self.message}"
        if self.fix:
            text += f" (fix: {self.fix})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "message": self.message,
            "file": self.file,
            "field": self.field,
            "fix": self.fix,
        }


class ValidationError(ShuyuError):
    code = "invalid"


class NotFound(ShuyuError):
    code = "not_found"
    http_status = 404


class Conflict(ShuyuError):
    code = "conflict"
    http_status = 409


class PermissionDenied(ShuyuError):
    code = "forbidden"
    http_status = 403


class PolicyRefused(ShuyuError):
    """The platform's rules forbid this (core data, expired grant, exhausted budget...)."""

    code = "refused"
    http_status = 422


class PlatformError(ShuyuError):
    """The platform itself is not usable (home unreadable, store down, engine missing)."""

    code = "platform"
    http_status = 503


class Unauthenticated(ShuyuError):
    """No acceptable credentials: wrong password, locked, expired or revoked token, bad cookie."""

    code = "unauthenticated"
    http_status = 401
