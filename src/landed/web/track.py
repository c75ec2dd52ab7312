"""The tracking endpoints: open pixel, acknowledgement page, click-through.

No login: the token in the URL is the capability, and it is verified with the
keyring before anything is read or written. A forged, malformed or unknown
token, and a click-through whose target signature does not verify, all get
the same plain 404 that tells nothing.

==============================  ==============================================
``GET /t/open/{token}.gif``     1x1 GIF; evidence ``pixel``: ``seen`` unless a machine fetched it
``GET /t/ack/{token}``          the acknowledgement page; records nothing
``POST /t/ack/{token}``         ``acknowledged``, cumulatively (``landed.store.ack``)
``GET /t/click/{token}?u&s``    redirect to the signed target; evidence ``click``: ``seen``
                                unless a machine followed it (never ``acknowledged``)
==============================  ==============================================

The paths are DESIGN.md's. A click is ``seen``, not ``acknowledged``, although
DESIGN.md's ladder lists "a tracked link was followed" under acknowledged:
link scanners follow links with browsers' user agents, and DESIGN.md's own
rule is that acknowledgement is a POST from a page, never a bare GET. See
docs/tracking.md.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from landed.api.deps import get_clock, get_db, get_keyring
from landed.api.metrics import get_metrics
from landed.compose.links import verify_click
from landed.domain import EvidenceSource, Level
from landed.errors import TokenError
from landed.store.ack import acknowledge
from landed.store.ledger import NewEvidence, append_evidence
from landed.store.overview import ack_context, delivery_exists
from landed.web import fetchers
from landed.web.rendering import render

router = APIRouter(tags=["tracking"])

#: A transparent 1x1 GIF89a (one colour, transparent by its Graphic Control Extension).
GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
#: Every client and proxy must ask again each time, or a second open is never seen.
NO_CACHE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
#: The token is in the URL: it must not travel on to any other site.
PRIVATE = {"Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex, nofollow"}
_MAX_AGENT = 512


def not_found() -> Response:
    """The one answer to everything that does not verify."""
    return PlainTextResponse("Not found\n", status_code=404, headers={**NO_CACHE, **PRIVATE})


def _verify(request: Request, token: str) -> str | None:
    try:
        return get_keyring(request).verify(token)
    except TokenError:
        return None


def _observed(request: Request) -> fetchers.Request:
    headers = {
        name: request.headers.get(name, "")
        for name in ("sec-purpose", "purpose", "x-moz", "x-purpose")
    }
    return fetchers.Request(
        method=request.method,
        user_agent=request.headers.get("user-agent", "")[:_MAX_AGENT],
        address=request.client.host if request.client else None,
        headers=headers,
    )


def _raw(seen: fetchers.Request, verdict: fetchers.Verdict, **extra: str) -> bytes:
    # The client address itself is not kept (privacy): its network class is enough.
    return json.dumps(
        {
            "method": seen.method,
            "user_agent": seen.user_agent,
            "network": verdict.network,
            "machine": verdict.machine,
            "fetcher": verdict.fetcher,
            **extra,
        },
        sort_keys=True,
    ).encode()


def _record_hit(
    request: Request, delivery_id: str, source: EvidenceSource, action: str, target: str = ""
) -> fetchers.Verdict | None:
    """Record a pixel fetch or a click; None when the delivery does not exist."""
    seen = _observed(request)
    verdict = fetchers.classify(seen)
    if verdict.machine:
        detail = f"{action} by a machine, not counted: {verdict.reason} [{verdict.fetcher}]"
    else:
        detail = f"{action} ({verdict.reason}, {verdict.network} network)"
    if target:
        detail += f" → {target}"
    now = get_clock(request).now()
    extra = {"url": target} if target else {}
    with get_db(request).write() as conn:
        if not delivery_exists(conn, delivery_id):
            return None
        append_evidence(
            conn,
            [
                NewEvidence(
                    delivery_id=delivery_id,
                    source=source,
                    level=None if verdict.machine else Level.SEEN,
                    observed_at=now,
                    detail=detail,
                    raw=_raw(seen, verdict, **extra),
                    # The same client fetching again is the same fact: one row per
                    # (delivery, kind, client, target), however often it reloads.
                    dedupe_key="\0".join(
                        [
                            source.value,
                            delivery_id,
                            verdict.fetcher or "person",
                            seen.user_agent,
                            target,
                        ]
                    ),
                )
            ],
            now=now,
        )
    return verdict


@router.get("/t/open/{token}.gif", summary="Open pixel")
@router.head("/t/open/{token}.gif", include_in_schema=False)
def open_pixel(token: str, request: Request) -> Response:
    """A 1x1 GIF. Records a ``pixel`` evidence: ``seen``, unless a machine fetched it."""
    hits = get_metrics(request).tracking_hits
    delivery_id = _verify(request, token)
    verdict = (
        _record_hit(request, delivery_id, EvidenceSource.PIXEL, "image loaded")
        if delivery_id
        else None
    )
    if verdict is None:
        hits.labels("open", "invalid").inc()
        return not_found()
    hits.labels("open", "machine" if verdict.machine else "counted").inc()
    return Response(GIF, media_type="image/gif", headers={**NO_CACHE, **PRIVATE})


@router.get("/t/ack/{token}", summary="Acknowledgement page (records nothing)")
def ack_page(token: str, request: Request) -> Response:
    """The notification, what its email listed as outstanding, and a button.

    A GET never acknowledges: link scanners and previews fetch every URL in a
    message, so only the form's POST counts.
    """
    hits = get_metrics(request).tracking_hits
    delivery_id = _verify(request, token)
    context = None
    if delivery_id:
        with get_db(request).read() as conn:
            context = ack_context(conn, delivery_id)
    if context is None:
        hits.labels("ack", "invalid").inc()
        return not_found()
    hits.labels("ack", "shown").inc()
    return render(
        request,
        "ack.html",
        {"ctx": context, "action": request.url.path, "done": None},
        headers={**NO_CACHE, **PRIVATE},
    )


@router.post("/t/ack/{token}", summary="Acknowledge, cumulatively")
def ack_submit(token: str, request: Request) -> Response:
    """Record ``acknowledged`` for this delivery and every notification its email
    listed as outstanding ("I have everything up to #N")."""
    hits = get_metrics(request).tracking_hits
    delivery_id = _verify(request, token)
    if delivery_id is None:
        hits.labels("ack", "invalid").inc()
        return not_found()
    seen = _observed(request)
    verdict = fetchers.classify(seen)
    now = get_clock(request).now()
    with get_db(request).write() as conn:
        if not delivery_exists(conn, delivery_id):
            hits.labels("ack", "invalid").inc()
            return not_found()
        confirmed = acknowledge(
            conn,
            delivery_id,
            now=now,
            detail=f"acknowledged on the acknowledgement page ({verdict.network} network)",
            raw=_raw(seen, verdict),
        )
        context = ack_context(conn, delivery_id)
    assert context is not None
    hits.labels("ack", "counted").inc()
    return render(
        request,
        "ack.html",
        {"ctx": context, "action": request.url.path, "done": set(confirmed)},
        headers={**NO_CACHE, **PRIVATE},
    )


@router.get("/t/click/{token}", summary="Click-through to a signed target")
def click(
    token: str,
    request: Request,
    # Unconstrained here, checked by verify_click: a bad query gets the same 404.
    u: Annotated[str, Query()] = "",
    s: Annotated[str, Query()] = "",
) -> Response:
    """Redirect to ``u`` if it was signed for this token; records a ``click``
    evidence: ``seen`` unless a machine followed it (never ``acknowledged``:
    scanners follow links)."""
    hits = get_metrics(request).tracking_hits
    delivery_id = _verify(request, token)
    verdict = None
    if delivery_id and verify_click(get_keyring(request), token, u, s):
        verdict = _record_hit(request, delivery_id, EvidenceSource.CLICK, "link followed", u)
    if verdict is None:
        hits.labels("click", "invalid").inc()
        return not_found()
    hits.labels("click", "machine" if verdict.machine else "counted").inc()
    return RedirectResponse(u, status_code=302, headers={**NO_CACHE, **PRIVATE})


@router.api_route("/t/{rest:path}", methods=["GET", "HEAD", "POST"], include_in_schema=False)
def anything_else(rest: str, request: Request) -> Response:
    """Any other path under ``/t/``: the same 404 as a bad token."""
    get_metrics(request).tracking_hits.labels("other", "invalid").inc()
    return not_found()


def install(app: FastAPI) -> None:
    app.include_router(router)
