"""Rendering HTML pages: one Jinja2 environment (autoescaping on), the static
files, and the security headers every page carries."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from landed.tokens import human_ref

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
STATIC_PATH = "/dashboard/static"

#: No scripts at all; styles only from our own stylesheet; forms post only to us;
#: never framed (clickjacking on the resolve and acknowledge buttons).
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def span(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``25m``, ``12s``: a length of time, to a person."""
    whole = max(0, int(seconds))
    if whole < 120:
        return f"{whole}s"
    if whole < 7200:
        return f"{whole // 60}m"
    if whole < 2 * 86400:
        return f"{whole // 3600}h {whole % 3600 // 60}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"


def age(since: datetime, now: datetime) -> str:
    """How long ago ``since`` was."""
    return span((now - since).total_seconds())


def when(value: datetime | None) -> str:
    """A timestamp in UTC to the second."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = when
    env.filters["ref"] = human_ref
    env.filters["duration"] = span
    env.globals["static"] = STATIC_PATH
    return env


templates = Jinja2Templates(env=_environment())


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A page with the security headers (and any extra ones)."""
    return templates.TemplateResponse(
        request,
        name,
        context,
        status_code=status_code,
        headers={**PAGE_HEADERS, **(headers or {})},
    )
