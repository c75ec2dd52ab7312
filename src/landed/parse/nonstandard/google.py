"""Bounces sent by Google (``From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>``,
``Subject: Delivery Status Notification (Failure)``), in their three shapes:

* Google Groups: a posting refused by a group; no DSN, the failed address in
  ``X-Failed-Recipients`` and a (localized) letter listing four possible causes;
* Gmail / Google Workspace with DSN fields: ``** Address not found **``, a
  paragraph, then "The response was:" and the remote reply; the DSN part
  holds the same reply without the paragraph;
* the same without DSN fields (Workspace refusing to send at all, e.g. a
  misconfigured "Send mail as"), and the legacy Gmail text ("Delivery to the
  following recipient failed permanently ... (state 14)").
"""

from __future__ import annotations

import re

from landed.parse import dsn
from landed.parse.draft import Detected, Draft
from landed.parse.fields import address_of
from landed.parse.mime import Mail, parse_headers, split_header_block
from landed.parse.nonstandard.common import cut, squeeze
from landed.parse.statuscodes import find_reply, find_status, reason_of_status
from landed.parse.transcript import find_remote_host

__all__ = ["read"]

_SENDER = "<mailer-daemon@googlemail.com>"
_SUBJECT = "Delivery Status Notification"
_RETURNED = (
    "----- Original message -----",
    "----- Message header follows -----",
    "Content-Type: message/rfc822",
)
_BANNER = re.compile(r"^\*\* .+ \*\*$", re.M)
_RESPONSE = re.compile(r"^The response(?: from the remote server)? was:$", re.M)
# Workspace's own failure wording.
_REASONS = (
    (
        "userunknown",
        "because the address couldn't be found. Check for typos "
        "or unnecessary spaces and try again.",
    ),
    ("notaccept", "Null MX"),  # RFC 7505 null MX at the destination
    ("networkerror", " had no relevant answers."),  # DNS answer without MX/A records
    ("networkerror", " responded with code NXDOMAIN"),
)
# Legacy Gmail: "(state N)" at the end of the remote reply names the SMTP state
# the session failed in (community-documented; Gmail no longer writes these).
_STATES = {
    "6": ("MAIL", "failedstarttls"),  # "500 Remote server does not support TLS"
    "8": ("AUTH", "systemerror"),  # "535 SMTP AUTH failed with the remote server"
    "9": ("AUTH", "failedstarttls"),  # "454 TLS missing certificate"
    "12": ("AUTH", "norelaying"),  # "500 Remote server does not support SMTP Authenticated Relay"
    "13": ("EHLO", "blocked"),
    "14": ("RCPT", "userunknown"),
    "15": ("DATA", "filtered"),
    "17": ("DATA", "filtered"),
    "18": ("DATA", "filtered"),
}
_STATE = re.compile(r" \(state (\d+)\)")
_LEGACY_REASONS = (
    ("expired", "DNS Error: Could not contact DNS servers"),
    ("expired", "Delivery to the following recipient has been delayed"),
    ("expired", "The recipient server did not accept our requests to connect"),
    ("hostunknown", "DNS Error: Domain name not found"),
    ("hostunknown", "DNS Error: DNS server returned answer with no data"),
)


def _is_google(mail: Mail) -> bool:
    return _SENDER in mail.headers.get("from") and _SUBJECT in mail.headers.get("subject")


def read(mail: Mail) -> Detected | None:
    """Read a bounce from Google's mail servers."""
    if not _is_google(mail):
        return None
    return _groups(mail) or _workspace(mail) or _legacy(mail)


def _groups(mail: Mail) -> Detected | None:
    failed = mail.headers.get("x-failed-recipients")
    if not failed or "x-google-smtp-source" not in mail.headers or "Google Groups" not in mail.body:
        return None
    explanation, _ = cut(mail.body, _RETURNED)
    paragraphs = explanation.split("\n\n")
    text = squeeze(" ".join(paragraphs[:4]))
    # The letter lists four possible causes (group misspelled, removed, members
    # only, not open to posting): the poster was refused, whatever the language.
    four = explanation.count("\n *") == 4 or explanation.count("\n*") == 4
    reason = "rejected" if four else "onhold"
    detected = Detected(dialect="googlegroups", returned=_after(mail.body))
    for address in failed.split(","):
        address = address.strip()
        if "@" in address:
            detected.drafts.append(Draft(recipient=address, reason=reason, diagnosis=text))
    return detected if detected.drafts else None


def _banner_text(human: str) -> str:
    """From the ``** ... **`` banner on: the explanation and the remote response."""
    match = _BANNER.search(human)
    if match is None:
        return ""
    lines = [
        line for line in human[match.start() :].split("\n") if not line.startswith("Content-Type:")
    ]
    return squeeze(" ".join(lines))


def _workspace(mail: Mail) -> Detected | None:
    human = (
        dsn.human_text(mail)
        if mail.ctype.startswith("multipart/")
        else cut(mail.body, _RETURNED)[0]
    )
    banner = _banner_text(human)
    fields = dsn.dsn_fields(mail)
    if fields is None or not fields.records:
        inline = dsn.inline_fields(mail)
        fields = inline[0] if inline is not None else None
    if fields is not None and fields.records:
        detected = dsn.read_report(mail, fields, "gsuite", human)
        for draft in detected.drafts:
            _merge_banner(draft, banner)
        return detected if detected.drafts else None
    if not banner:
        return None
    # No DSN fields: the only address is the returned message's To.
    returned = _after(mail.body) or dsn.returned_part(mail)
    to = address_of(parse_headers(split_header_block(returned)[0]).get("to"))
    if not to:
        return None
    draft = Draft(recipient=to, diagnosis=banner)
    draft.reason = _own_reason(banner)
    return Detected(dialect="gsuite", drafts=[draft], returned=returned)


def _merge_banner(draft: Draft, banner: str) -> None:
    diagnosis = squeeze(draft.diagnosis)
    if banner:
        if not diagnosis or diagnosis.isdigit():
            diagnosis = banner
        else:
            in_text = reply = ""
            if draft.status in ("", "5.0.0", "4.0.0"):
                in_text = find_status(banner)
                if in_text and not in_text.endswith(".0.0"):
                    draft.status = in_text
            if draft.reply_code in ("", "500", "400"):
                reply = find_reply(banner)
                if reply and not reply.endswith("00"):
                    draft.reply_code = reply
            if in_text or (reply and len(banner) > len(diagnosis)):
                diagnosis = banner
    draft.diagnosis = diagnosis
    draft.reason = _own_reason(diagnosis)
    if not draft.remote_mta:
        draft.remote_mta = find_remote_host(diagnosis)


def _own_reason(text: str) -> str:
    for reason, phrase in _REASONS:
        if phrase in text:
            return reason
    return ""


def _legacy(mail: Mail) -> Detected | None:
    explanation, _ = cut(mail.body, _RETURNED)
    start = explanation.find("Delivery to the following recipient")
    if start < 0:
        return None
    drafts: list[Draft] = []
    pieces: list[list[str]] = []
    # "Delivery to the following recipient has been delayed:" / "failed
    # permanently:" opens the letter and is about every address under it.
    opening = explanation[start : explanation.find("\n", start)]
    delayed = "has been delayed" in opening
    for line in explanation[start:].split("\n"):
        if not line:
            continue
        if line.startswith(" ") and "@" in line:
            address = address_of(line.strip())
            if address:
                drafts.append(Draft(recipient=address))
                pieces.append([])
                continue
        if pieces:
            pieces[-1].append(line)
    for draft, lines in zip(drafts, pieces, strict=True):
        text = squeeze(" ".join(lines))
        draft.diagnosis = text
        draft.remote_mta = find_remote_host(text)
        state = _STATE.search(text)
        if state is not None and state.group(1) in _STATES:
            draft.command, draft.reason = _STATES[state.group(1)]
        if delayed:
            draft.action = "delayed"
        if not draft.reason:
            seen = f"{opening} {text}"
            draft.reason = next((r for r, phrase in _LEGACY_REASONS if phrase in seen), "")
        if draft.reason:
            code = find_status(text)
            if code and ".0" not in code:
                # A precise code in the remote reply outranks the state table.
                draft.status = code
                draft.reason = reason_of_status(code) or draft.reason
    return Detected(dialect="gmail", drafts=drafts, returned=_after(mail.body)) if drafts else None


def _after(body: str) -> str:
    for marker in _RETURNED:
        at = body.find(marker)
        if at >= 0:
            rest = body[at + len(marker) :]
            return rest.lstrip("\n")
    return ""
