"""What the HTTP layer hands to the API handlers, and what they hand back."""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

_INVALID = object()


@dataclass
class ApiRequest:
    method: str
    path: str  # after the data-centre prefix: "/api/v2/zylker/conversations"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes
    dc: str
    now: float  # world clock
    wall: float = field(default_factory=time.time)
    extra: dict[str, Any] = field(default_factory=dict)
    _json: Any = None
    _parsed: bool = False

    def json(self) -> Any:
        """The JSON body; None when there is none; raises ValueError when it is not JSON."""
        if not self._parsed:
            self._parsed = True
            if not self.body.strip():
                self._json = None
            else:
                try:
                    self._json = json.loads(self.body)
                except (ValueError, UnicodeDecodeError):
                    self._json = _INVALID
        if self._json is _INVALID:
            raise ValueError("body is not JSON")
        return self._json

    def bearer(self, scheme: str = "Zoho-oauthtoken") -> str | None:
        """The token of ``Authorization: <scheme> <token>``; None if absent or another scheme."""
        header = self.headers.get("authorization", "")
        prefix = scheme + " "
        if not header.startswith(prefix):
            return None
        token = header[len(prefix) :].strip()
        return token or None


@dataclass
class ApiAnswer:
    status: int
    body: bytes = b""
    content_type: str = "application/json; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    error_code: int | str | None = None
    portal: str | None = None
    token_fp: str | None = None
    drop: bool = False


def json_answer(status: int, payload: Any, **kwargs: Any) -> ApiAnswer:
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return ApiAnswer(status=status, body=body, **kwargs)


def html_answer(status: int, title: str, **kwargs: Any) -> ApiAnswer:
    page = f"<html><head><title>{status} {title}</title></head><body><h1>{title}</h1></body></html>"
    return ApiAnswer(
        status=status, body=page.encode(), content_type="text/html; charset=utf-8", **kwargs
    )


class RateWindow:
    """Calls per portal: a sliding minute (v2) or a fixed minute (reference)."""

    def __init__(self) -> None:
        self.calls: deque[float] = deque()
        self.locked_until = 0.0
        self.window_start = 0.0
        self.window_count = 0

    def sliding(self, now: float, limit: int) -> bool:
        """Count one call; False when it is over the limit."""
        while self.calls and now - self.calls[0] >= 60:
            self.calls.popleft()
        if len(self.calls) >= limit:
            return False
        self.calls.append(now)
        return True

    def fixed(self, now: float, limit: int) -> tuple[bool, int, int]:
        """Count one call in the current minute; (allowed, remaining, reset epoch seconds)."""
        start = now - (now % 60)
        if start != self.window_start:
            self.window_start, self.window_count = start, 0
        allowed = self.window_count < limit
        if allowed:
            self.window_count += 1
        return allowed, max(0, limit - self.window_count), int(start + 60)

    def peek(self, now: float, limit: int) -> tuple[int, int]:
        start = now - (now % 60)
        used = self.window_count if start == self.window_start else 0
        return max(0, limit - used), int(start + 60)


Route = tuple[tuple[str, ...], dict[str, tuple[str, str]]]


def match_route(routes: list[Route], parts: list[str]) -> tuple[Route, list[str]] | None:
    """The route whose pattern fits the path segments ("*" is an id), and the ids."""
    for route in routes:
        pattern = route[0]
        if len(pattern) != len(parts):
            continue
        ids = []
        for want, got in zip(pattern, parts, strict=True):
            if want == "*":
                ids.append(got)
            elif want != got:
                break
        else:
            return route, ids
    return None


def page_params(
    query: dict[str, str], *, index_name: str, limit_name: str, default: int, maximum: int
) -> tuple[int, int] | str:
    """(page, size) or the name of the bad parameter."""
    try:
        page = int(query.get(index_name, "1"))
        if page < 1:
            raise ValueError
    except ValueError:
        return index_name
    raw = query.get(limit_name)
    if raw is None or raw == "":
        return page, default
    try:
        size = int(raw)
    except ValueError:
        return limit_name
    if not 1 <= size <= maximum:
        return limit_name
    return page, size
