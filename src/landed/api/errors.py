"""The REST API's errors: every 4xx is ``{"error": {"code": ..., "message": ...}}``.

The handlers are installed on the whole app (exception handlers cannot be
scoped to a router) but only shape responses under ``/v1/``, ``/healthz`` and
``/metrics``; elsewhere (tracking endpoints, the dashboard) FastAPI's default
handlers answer, so that a page keeps its own look and a forged tracking token
keeps getting a plain 404 that tells nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from landed.errors import InputError

log = logging.getLogger("landed.api")
_LEADING_FIELD = re.compile(r"^(?:class )?([a-z_]+(?:\[\d+\])?)(?=[:\s])")

#: HTTP reason codes for errors raised by the framework itself (unknown route,
#: wrong method, a body too large for the server).
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answered as JSON with ``status`` and a stable ``code``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.field = field


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    field: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return JSONResponse({"error": body}, status_code=status, headers=dict(headers or {}))


def is_api_path(path: str) -> bool:
    return path.startswith("/v1/") or path in ("/v1", "/healthz", "/metrics")


def field_name(loc: Sequence[int | str]) -> str:
    """``("body", "to", 0)`` -> ``to[0]``; the request part (body, query...) is dropped
    except for headers, which are named as sent."""
    parts = list(loc)
    where = parts.pop(0) if parts and parts[0] in ("body", "query", "path", "header") else None
    if where == "header" and parts:
        return f"{str(parts[0]).replace('_', '-').title()} header"
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or str(where or "body")


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.code, exc.message, headers=exc.headers, field=exc.field)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if not is_api_path(request.url.path):
        return await request_validation_exception_handler(request, exc)
    errors = list(exc.errors())
    first = errors[0] if errors else {}
    content_type = request.headers.get("content-type", "")
    if (
        tuple(first.get("loc", ())) == ("body",)
        and first.get("type") != "missing"
        and "json" not in content_type
    ):
        # FastAPI reads a body that is not declared JSON as bytes, and then reports a
        # type error that would not tell the caller what to change.
        return error_response(
            415,
            "unsupported_media_type",
            "the body must be JSON, sent with Content-Type: application/json"
            + (f" (not {content_type[:80]})" if content_type else ""),
            field="body",
        )
    field = field_name(first.get("loc", ()))
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    if first.get("type") == "json_invalid":
        field, message = "body", "the body is not valid JSON"
    elif first.get("type") == "missing":
        message = "is required"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return error_response(422, "invalid", f"{field}: {message}{more}", field=field)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if not is_api_path(request.url.path):
        return await http_exception_handler(request, exc)
    code = _CODES.get(exc.status_code, "error")
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such endpoint: {request.method} {request.url.path}"
    return error_response(exc.status_code, code, message, headers=exc.headers)


def input_error(exc: InputError) -> ApiError:
    """422 for an ``InputError`` from the validation shared with the library and the
    CLI; its message starts with the field's name (``to[1]: not an email address``)."""
    message = str(exc)
    match = _LEADING_FIELD.match(message)
    field = match[1] if match else None
    return ApiError(422, "invalid", message, field=field)


async def _ledger_unavailable(request: Request, exc: Exception) -> Response:
    """The database does not answer (down, or SQLite locked for too long)."""
    log.error("ledger error on %s %s: %s", request.method, request.url.path, exc)
    if not is_api_path(request.url.path):
        return PlainTextResponse("Internal Server Error", status_code=500)
    return error_response(
        503,
        "unavailable",
        "the ledger is not answering; try again later",
        headers={"Retry-After": "5"},
    )


async def _unstorable(request: Request, exc: Exception) -> Response:
    """A value the database refused (PostgreSQL: NUL in text, an integer out of range).

    The API validates its input before storing it, so this is a safety net: an
    input that slipped past validation is still the caller's error, not a 500.
    """
    log.warning("value refused by the ledger on %s %s: %s", request.method, request.url.path, exc)
    if not is_api_path(request.url.path):
        return PlainTextResponse("Bad Request", status_code=400)
    return error_response(422, "invalid", "a value in the request cannot be stored")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(OperationalError, _ledger_unavailable)
    app.add_exception_handler(DataError, _unstorable)
