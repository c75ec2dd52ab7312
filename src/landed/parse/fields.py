"""RFC 3464 delivery-status fields, read from wherever a bounce puts them.

Standard DSNs put them in a ``message/delivery-status`` part: one block of
per-message fields, then one block per recipient, separated by empty lines.
Real ones bend this: blocks without empty lines, fields in a ``text/plain``
part, ``Diagnostic-Code`` continued over several lines, addresses in angle
brackets, missing address types. :func:`read_fields` reads all of that; a new
recipient starts at each ``Final-Recipient`` (or an ``Original-Recipient``
after one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["DsnFields", "DsnRecord", "address_of", "read_fields"]

_ADDRESS = re.compile(r"[^\s<>\"'(),;:\[\]]+@[^\s<>\"'(),;:\[\]]+")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9-]*")
_PER_MESSAGE = frozenset(
    {"reporting-mta", "original-envelope-id", "arrival-date", "received-from-mta",
     "dsn-gateway", "x-postfix-sender", "x-postfix-queue-id", "x-original-message-id"}
)  # fmt: skip
_PER_RECIPIENT = frozenset(
    {"action", "status", "remote-mta", "diagnostic-code", "last-attempt-date",
     "will-retry-until", "final-log-id", "x-actual-recipient", "x-remote-mta",
     "x-powermta-bouncecategory"}
)  # fmt: skip


def address_of(value: str) -> str:
    """The email address in a field value (``rfc822; <a@b>`` -> ``a@b``), or ``""``."""
    semi = value.find(";")
    if semi >= 0 and "@" not in value[:semi]:
        value = value[semi + 1 :]
    match = _ADDRESS.search(value)
    if match is None:
        return ""
    address = match.group(0).strip(".")
    if address.startswith("mailto:"):
        address = address[7:]
    return address


def _typed(value: str) -> tuple[str, str]:
    """Split ``smtp; 550 ...`` into (``SMTP``, ``550 ...``)."""
    semi = value.find(";")
    if semi > 0 and " " not in value[:semi].strip():
        return value[:semi].strip().upper(), value[semi + 1 :].strip()
    return "", value.strip()


@dataclass(slots=True)
class DsnRecord:
    """One per-recipient block."""

    final_recipient: str = ""
    #: The Final-Recipient value as written (for "@host" without a local part).
    final_raw: str = ""
    original_recipient: str = ""
    actual_recipient: str = ""
    action: str = ""
    status: str = ""
    remote_mta: str = ""
    diagnostic: str = ""
    diagnostic_type: str = ""
    status_comment: str = ""
    last_attempt: str = ""
    #: PowerMTA's own classification of the failure ("bad-mailbox", ...).
    category: str = ""


@dataclass(slots=True)
class DsnFields:
    """The fields of one delivery-status report."""

    reporting_mta: str = ""
    envid: str = ""
    arrival_date: str = ""
    records: list[DsnRecord] = field(default_factory=list)


# Field name as written (before the colon) -> lowercase name, or "" when it is
# not a field name; the same names recur in every report, so each is checked
# once (a bounded table).
_NAMES: dict[str, str] = {}


def _field_name(raw: str) -> str:
    name = _NAME.fullmatch(raw.rstrip(" \t"))
    lowered = name.group(0).lower() if name is not None else ""
    if len(_NAMES) < 4096:
        _NAMES[raw] = lowered
    return lowered


def _unfold(text: str) -> list[tuple[str, str]]:
    """(lowercase name, value) pairs; continuation lines are joined with a space."""
    pairs: list[tuple[str, str]] = []
    names = _NAMES
    for line in text.split("\n"):
        if not line or line.isspace():
            # Keep block boundaries: they separate recipients.
            if pairs and pairs[-1][0] != "\n":
                pairs.append(("\n", ""))
            continue
        if (line[0] == " " or line[0] == "\t") and pairs and pairs[-1][0] != "\n":
            name, value = pairs[-1]
            pairs[-1] = (name, f"{value} {line.strip()}")
            continue
        colon = line.find(":")
        name = ""
        if colon > 0:
            raw = line[:colon]
            name = names.get(raw) or ("" if raw in names else _field_name(raw))
        if not name:
            # A bare line inside a Diagnostic-Code continues it (broken folding).
            if pairs and pairs[-1][0] == "diagnostic-code":
                name, value = pairs[-1]
                pairs[-1] = (name, f"{value} {line.strip()}")
            else:
                pairs.append(("", line))
            continue
        pairs.append((name, line[colon + 1 :].strip()))
    return pairs


def read_fields(text: str) -> DsnFields:
    """Read delivery-status fields from ``text`` (a DSN part or any body)."""
    result = DsnFields()
    current: DsnRecord | None = None
    new_block = True
    since_final = False  # a per-recipient field came after the Final-Recipient
    for name, value in _unfold(text):
        if name == "\n":
            new_block = True
            continue
        if not name:
            continue
        if name == "final-recipient":
            if current is None or current.final_raw or (new_block and current.action):
                current = DsnRecord()
                result.records.append(current)
            current.final_recipient = address_of(value)
            current.final_raw = value.partition(";")[2].strip() or value.strip()
            new_block = since_final = False
        elif name == "original-recipient":
            # Sendmail writes Original- before Final-Recipient, Postfix after it.
            if (
                current is None
                or current.original_recipient
                or (current.final_recipient and (new_block or since_final))
            ):
                current = DsnRecord()
                result.records.append(current)
            current.original_recipient = address_of(value)
            new_block = False
        elif name in _PER_RECIPIENT:
            if current is None or (new_block and current.final_raw and name in _OPENERS):
                # Facebook's DSNs put Diagnostic-Code and Status before
                # Final-Recipient in the block: keep them for it.
                current = DsnRecord()
                result.records.append(current)
            new_block = False
            since_final = True
            if name == "action":
                current.action = value.split()[0].lower() if value.split() else ""
            elif name == "status":
                words = value.split()
                current.status = words[0] if words else ""
                # "Status: 4.0.0 (cat.example.net: host name lookup failure)" (old Sendmail)
                if len(words) > 1:
                    current.status_comment = " ".join(words[1:]).strip("()")
            elif name in ("remote-mta", "x-remote-mta"):
                # "dns; mx.example.jp [192.0.2.95]" (Courier): the host name.
                host = _typed(value)[1].split()
                current.remote_mta = host[0].strip("[]") if host else ""
            elif name == "diagnostic-code":
                current.diagnostic_type, current.diagnostic = _typed(value)
            elif name == "x-actual-recipient":
                current.actual_recipient = address_of(value)
            elif name == "x-powermta-bouncecategory":
                current.category = value.strip().lower()
            elif name == "last-attempt-date":
                current.last_attempt = value
        elif name in _PER_MESSAGE:
            new_block = False
            if name == "reporting-mta" and not result.reporting_mta:
                result.reporting_mta = _typed(value)[1]
            elif name == "original-envelope-id" and not result.envid:
                result.envid = value.strip().strip("<>")
            elif name == "arrival-date" and not result.arrival_date:
                result.arrival_date = value
    _settle_orphans(result.records)
    return result


# Per-recipient fields that may open a recipient's block before its
# Final-Recipient (Oracle Communications Messaging Server, Amazon SES inbound
# write "Action:" first, Facebook "Diagnostic-Code:").
_OPENERS = frozenset({"action", "status", "diagnostic-code"})


def _settle_orphans(records: list[DsnRecord]) -> None:
    """Drop blocks that never named a recipient; their fields go to the one before.

    A block of per-recipient fields without Final-Recipient is the tail of the
    previous recipient's block split by a stray empty line.
    """
    index = 0
    while index < len(records):
        record = records[index]
        if record.final_raw or record.original_recipient:
            index += 1
            continue
        if index > 0:
            previous = records[index - 1]
            for name in ("action", "status", "remote_mta", "diagnostic", "diagnostic_type",
                         "status_comment", "last_attempt", "category"):  # fmt: skip
                if not getattr(previous, name):
                    setattr(previous, name, getattr(record, name))
        del records[index]
