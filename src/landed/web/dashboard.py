"""The dashboard: what did not land, and why. Server-rendered, no JavaScript.

Every page needs a login (operators, ``landed user add``); every form POST
carries a CSRF token. Pages, all under ``/dashboard``:

- ``/dashboard/``: open alerts, oldest first, with reason, evidence and
  escalation timeline; acknowledge and resolve buttons;
- ``/dashboard/topics?key=K``: the topic matrix (recent topics without ``key``);
- ``/dashboard/recipients?address=A``: the recipient's ledger, with gaps;
- ``/dashboard/deliveries/{id}``: a delivery's evidence timeline with raw material;
- ``/dashboard/charts``: the level funnel and evidence latency over time;
- ``/dashboard/search?q=``: topic key, address, delivery id, token or Ref.

See docs/dashboard.md.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import Markup

from landed.api.deps import get_clock, get_db, get_keyring, get_settings
from landed.errors import TokenError
from landed.store.alerts import add_event, find_alerts, resolve_alert
from landed.store.operators import operator_enabled, verify_operator
from landed.store.overview import (
    evidence_latencies,
    inbound_raw,
    level_counts,
    raw_evidence,
    recent_recipients,
    recent_topics,
)
from landed.store.queries import find_deliveries, recipient_ledger, sequence_gaps, topic_matrix
from landed.tokens import normalize_ref
from landed.web import charts
from landed.web.rendering import STATIC_DIR, STATIC_PATH, age, render
from landed.web.session import (
    COOKIE,
    LOGIN_COOKIE,
    LoginThrottle,
    Session,
    SessionSigner,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False)
#: How much raw evidence a page shows before cutting (the rest: the whole message page).
RAW_LIMIT = 64 * 1024
_DELIVERY_ID = re.compile(r"^[0-9a-hjkmnp-tv-z]{26}$", re.IGNORECASE)


class LoginRequired(Exception):
    """No valid session: the handler sends the browser to the login page."""


def _signer(request: Request) -> SessionSigner:
    signer: SessionSigner = request.app.state.session_signer
    return signer


def _secure(request: Request) -> bool:
    return get_settings(request).public_url.lower().startswith("https://")


def require_operator(request: Request) -> Session:
    """The logged-in operator's session; ``LoginRequired`` otherwise."""
    session = _signer(request).check(request.cookies.get(COOKIE), get_clock(request).now())
    if session is None or not operator_enabled(get_db(request), session.username):
        raise LoginRequired
    return session


Operator = Annotated[Session, Depends(require_operator)]
Csrf = Annotated[str, Form(max_length=200)]


def _page(request: Request, session: Session, name: str, **context: object) -> Response:
    return render(
        request,
        name,
        {
            "user": session.username,
            "csrf": _signer(request).csrf(session),
            "now": get_clock(request).now(),
            "age": age,
            **context,
        },
    )


def _forbidden(request: Request) -> Response:
    return render(
        request,
        "error.html",
        {
            "message": "This form has expired or did not come from this dashboard. "
            "Go back, reload the page and try again."
        },
        status_code=403,
    )


def _local(path: str) -> str:
    """``path`` if it is a path on this site, else the dashboard's front page."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.startswith("/dashboard") or "\\" in path:
        return "/dashboard/"
    return path


# --- login ----------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str = "/dashboard/", error: str = "") -> Response:
    signer = _signer(request)
    nonce = request.cookies.get(LOGIN_COOKIE) or signer.login_nonce()
    response = render(
        request,
        "login.html",
        {"csrf": signer.login_csrf(nonce), "next": _local(next), "error": error},
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/dashboard",
    )
    return response


@router.post("/login")
def login(
    request: Request,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf: Csrf = "",
    next: Annotated[str, Form(max_length=2000)] = "/dashboard/",
) -> Response:
    signer = _signer(request)
    if not signer.check_login_csrf(request.cookies.get(LOGIN_COOKIE), csrf):
        return _forbidden(request)
    throttle: LoginThrottle = request.app.state.login_throttle
    now = get_clock(request).now()
    address = request.client.host if request.client else "?"
    target = f"/dashboard/login?next={quote(_local(next))}"
    if throttle.blocked(username, address, now):
        return RedirectResponse(f"{target}&error=throttled", status_code=303)
    if not verify_operator(get_db(request), username, password):
        throttle.failed(username, address, now)
        return RedirectResponse(f"{target}&error=failed", status_code=303)
    throttle.succeeded(username)
    cookie, session = signer.issue(username, now)
    response = RedirectResponse(_local(next), status_code=303)
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int((session.expires - now).total_seconds()),
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/dashboard")
    return response


@router.post("/logout")
def logout(request: Request, session: Operator, csrf: Csrf = "") -> Response:
    if not _signer(request).check_csrf(session, csrf):
        return _forbidden(request)
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


# --- alerts ---------------------------------------------------------------------------


@router.get("/")
def alerts_page(
    request: Request, session: Operator, state: Annotated[str, Query()] = "open"
) -> Response:
    state = "resolved" if state == "resolved" else "open"
    with get_db(request).read() as conn:
        alerts = find_alerts(conn, state=state, limit=500)
        deliveries = {
            d.delivery_id: d
            for d in find_deliveries(conn, delivery_ids=sorted({a.delivery_id for a in alerts}))
        }
    if state == "resolved":
        alerts = sorted(alerts, key=lambda a: a.resolved_at or a.opened_at, reverse=True)
    return _page(request, session, "alerts.html", alerts=alerts, deliveries=deliveries, state=state)


@router.post("/alerts/{alert_id}/resolve")
def resolve(
    request: Request,
    session: Operator,
    alert_id: int,
    csrf: Csrf = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    if not _signer(request).check_csrf(session, csrf):
        return _forbidden(request)
    note = note.strip() or "resolved on the dashboard"
    with get_db(request).write() as conn:
        resolve_alert(
            conn,
            alert_id,
            by="person",
            note=f"{session.username}: {note}",
            now=get_clock(request).now(),
        )
    return RedirectResponse("/dashboard/", status_code=303)


@router.post("/alerts/{alert_id}/acknowledge")
def acknowledge_alert(
    request: Request,
    session: Operator,
    alert_id: int,
    csrf: Csrf = "",
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """An operator has seen the alert and is on it: a timeline entry, the alert stays open."""
    if not _signer(request).check_csrf(session, csrf):
        return _forbidden(request)
    with get_db(request).write() as conn:
        if find_alerts(conn, state="open", ids=[alert_id], timeline=False):
            detail = f"by {session.username}" + (f": {note.strip()}" if note.strip() else "")
            add_event(conn, alert_id, "acknowledged", detail, get_clock(request).now())
    return RedirectResponse("/dashboard/", status_code=303)


# --- topics, recipients, deliveries -----------------------------------------------------


@router.get("/topics")
def topics_page(
    request: Request, session: Operator, key: Annotated[str, Query(max_length=200)] = ""
) -> Response:
    with get_db(request).read() as conn:
        if not key:
            return _page(request, session, "topics.html", topics=recent_topics(conn))
        matrix = topic_matrix(conn, key)
    return _page(request, session, "topic.html", matrix=matrix, key=key)


@router.get("/recipients")
def recipients_page(
    request: Request, session: Operator, address: Annotated[str, Query(max_length=320)] = ""
) -> Response:
    with get_db(request).read() as conn:
        if not address:
            return _page(request, session, "recipients.html", recipients=recent_recipients(conn))
        entries = recipient_ledger(conn, address)
    return _page(
        request,
        session,
        "ledger.html",
        address=address.strip().lower(),
        entries=entries,
        gaps=sequence_gaps(entries),
        unproven=[e for e in entries if not e.proven],
    )


@router.get("/deliveries/{delivery_id}")
def delivery_page(request: Request, session: Operator, delivery_id: str) -> Response:
    if not _DELIVERY_ID.match(delivery_id):
        return _not_found(request, session)
    delivery_id = delivery_id.lower()
    with get_db(request).read() as conn:
        found = find_deliveries(conn, delivery_ids=[delivery_id])
        if not found:
            return _not_found(request, session)
        raws = raw_evidence(conn, delivery_id)
        alerts = find_alerts(conn, state=None, delivery_ids=[delivery_id])
    raw_text = {
        eid: (r.raw[:RAW_LIMIT].decode("utf-8", "replace"), len(r.raw) > RAW_LIMIT)
        for eid, r in raws.items()
    }
    return _page(
        request,
        session,
        "delivery.html",
        d=found[0],
        raws=raws,
        raw_text=raw_text,
        alerts=alerts,
    )


@router.get("/inbound/{inbound_id}")
def inbound_page(request: Request, session: Operator, inbound_id: int) -> Response:
    with get_db(request).read() as conn:
        found = inbound_raw(conn, inbound_id)
    if found is None:
        return _not_found(request, session)
    channel, state, raw = found
    return _page(
        request,
        session,
        "inbound.html",
        inbound_id=inbound_id,
        channel=channel,
        state=state,
        text=raw[: RAW_LIMIT * 16].decode("utf-8", "replace"),
        cut=len(raw) > RAW_LIMIT * 16,
    )


# --- charts ------------------------------------------------------------------------------


@router.get("/charts")
def charts_page(
    request: Request, session: Operator, days: Annotated[int, Query(ge=1, le=365)] = 14
) -> Response:
    since = get_clock(request).now() - timedelta(days=days)
    with get_db(request).read() as conn:
        counts = level_counts(conn, since=since)
        latencies = evidence_latencies(conn, since=since)
    steps = charts.funnel(counts)
    series = charts.latency_series((p.created_at, p.level, p.seconds) for p in latencies)
    return _page(
        request,
        session,
        "charts.html",
        days=days,
        steps=steps,
        series=series,
        # Both are built from numbers and escaped text only (landed.web.charts).
        funnel_svg=Markup(charts.funnel_svg(steps)),  # noqa: S704
        latency_svg=Markup(charts.latency_svg(series)),  # noqa: S704
    )


# --- search ------------------------------------------------------------------------------


@router.get("/search")
def search(
    request: Request, session: Operator, q: Annotated[str, Query(max_length=400)] = ""
) -> Response:
    """Go to what ``q`` names: a token or delivery id, a Ref, an address, a topic key."""
    q = q.strip()
    if not q:
        return RedirectResponse("/dashboard/", status_code=303)
    keyring = get_keyring(request)
    db = get_db(request)
    candidate: str | None = None
    try:
        candidate = keyring.verify(q)
    except TokenError:
        if _DELIVERY_ID.match(q):
            candidate = q.lower()
    with db.read() as conn:
        if candidate and find_deliveries(conn, delivery_ids=[candidate], limit=1):
            return _go(f"/dashboard/deliveries/{candidate}")
        try:
            ref = normalize_ref(q) if len(q.replace("-", "")) == 8 else None
        except TokenError:
            ref = None
        by_ref = find_deliveries(conn, ref=ref, limit=20) if ref else []
        if len(by_ref) == 1:
            return RedirectResponse(
                f"/dashboard/deliveries/{by_ref[0].delivery_id}", status_code=303
            )
        if "@" in q and recipient_ledger(conn, q, limit=1):
            return _go(f"/dashboard/recipients?address={quote(q)}")
        if topic_matrix(conn, q).notifications:
            return _go(f"/dashboard/topics?key={quote(q)}")
    return _page(request, session, "search.html", q=q, matches=by_ref)


def _go(path: str) -> Response:
    return RedirectResponse(path, status_code=303)


def _not_found(request: Request, session: Session) -> Response:
    response = _page(request, session, "error.html", message="Nothing here.")
    response.status_code = 404
    return response


# --- wiring ------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    app.state.session_signer = SessionSigner(app.state.keyring)
    app.state.login_throttle = LoginThrottle()

    async def login_required(request: Request, _exc: Exception) -> Response:
        path = request.url.path
        if request.method != "GET":
            path = "/dashboard/"
        elif request.url.query:
            path += f"?{request.url.query}"
        return RedirectResponse(f"/dashboard/login?next={quote(path)}", status_code=303)

    app.add_exception_handler(LoginRequired, login_required)
    app.include_router(router)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="dashboard-static")

    @app.get("/dashboard", include_in_schema=False)
    def dashboard_root() -> Response:
        return RedirectResponse("/dashboard/", status_code=307)

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse("/dashboard/", status_code=307)
