"""Amazon SES: bounce, complaint and delivery notifications.

Two shapes reach a mailbox:

* an SNS notification forwarded by email (``X-Amz-Sns-Message-Id``): the body
  is SES's JSON event (``notificationType`` Bounce / Complaint / Delivery),
  folded by SNS at fixed width, a ``!`` marking a folded line;
* a bounce SES itself sends (``X-SES-Outgoing`` / ``X-AWS-Outgoing``): an RFC
  3464 DSN whose Status is often a vague ``5.0.0`` / ``5.1.0`` while the
  Diagnostic-Code quotes the real reply ("'5.1.1 user unknown'").
"""

from __future__ import annotations

import json

from landed.parse import dsn
from landed.parse.draft import Detected, Draft
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import squeeze
from landed.parse.statuscodes import find_status

__all__ = ["read"]

# SES bounce types (docs.aws.amazon.com/ses/latest/dg/notification-contents.html):
# only these say more than the DSN fields do.
_BOUNCE_TYPES = {
    ("Transient", "MailboxFull"): "mailboxfull",
    ("Transient", "MessageTooLarge"): "mesgtoobig",
}


def _unfold(body: str) -> str:
    pieces: list[str] = []
    folded = False
    for line in body.split("\n"):
        if not line:
            continue
        if line == "--":
            break
        if folded:
            line = line[1:]
        folded = line.endswith("!")
        pieces.append(line[:-1] if folded else line)
    return "".join(pieces)


def _from_json(mail: Mail) -> Detected | None:
    try:
        event = json.loads(_unfold(mail.body))
        if isinstance(event, dict) and isinstance(event.get("Message"), str):
            event = json.loads(event["Message"])
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    kind = event.get("notificationType")
    detected = Detected(dialect="amazonses")
    mail_part = event.get("mail") if isinstance(event.get("mail"), dict) else {}
    if isinstance(mail_part, dict):
        lines = []
        for header in mail_part.get("headers") or []:
            if isinstance(header, dict) and header.get("name") in (
                "From",
                "To",
                "Subject",
                "Message-ID",
                "Date",
            ):
                lines.append(f"{header['name']}: {header.get('value', '')}")
        if not any(line.startswith("Message-ID:") for line in lines) and mail_part.get("messageId"):
            lines.append(f"Message-ID: {mail_part['messageId']}")
        detected.returned = "\n".join(lines) + "\n" if lines else ""
    if kind == "Bounce":
        bounce = event.get("bounce") or {}
        kinds = (str(bounce.get("bounceType") or ""), str(bounce.get("bounceSubType") or ""))
        preset = _BOUNCE_TYPES.get(kinds, "")
        mta = str(bounce.get("reportingMTA") or "")
        for item in bounce.get("bouncedRecipients") or []:
            code = str(item.get("diagnosticCode") or "")
            spec, _, text = code.partition(";") if ";" in code else ("", "", code)
            detected.drafts.append(
                Draft(
                    recipient=str(item.get("emailAddress") or ""),
                    action=str(item.get("action") or ""),
                    status=str(item.get("status") or ""),
                    spec=spec.strip().upper(),
                    diagnosis=text.strip(),
                    reason=preset,
                    reporting_mta=mta.removeprefix("dsn; "),
                )
            )
    elif kind == "Complaint":
        complaint = event.get("complaint") or {}
        detected.kind = "feedback"
        feedback = str(complaint.get("complaintFeedbackType") or "")
        detected.extra["feedback_type"] = feedback
        for item in complaint.get("complainedRecipients") or []:
            detected.drafts.append(
                Draft(
                    recipient=str(item.get("emailAddress") or ""),
                    reason="feedback",
                    feedback_type=feedback,
                )
            )
    elif kind == "Delivery":
        delivery = event.get("delivery") or {}
        response = str(delivery.get("smtpResponse") or "")
        for address in delivery.get("recipients") or []:
            detected.drafts.append(
                Draft(
                    recipient=str(address),
                    action="delivered",
                    reason="delivered",
                    diagnosis=response,
                    status=find_status(response),
                    reporting_mta=str(delivery.get("reportingMTA") or ""),
                )
            )
    detected.drafts = [d for d in detected.drafts if "@" in d.recipient]
    return detected if detected.drafts else None


def read(mail: Mail) -> Detected | None:
    """Read an Amazon SES notification or bounce."""
    headers = mail.headers
    if mail.body.startswith("{"):
        return _from_json(mail) if headers.get("x-amz-sns-message-id") else None
    if "Amazon WorkMail" in headers.get("x-mailer"):
        return None
    if "x-ses-outgoing" not in headers and "x-aws-outgoing" not in headers:
        return None
    fields = dsn.dsn_fields(mail)
    if fields is None or not fields.records:
        return None
    detected = dsn.read_report(mail, fields, "amazonses")
    for draft in detected.drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
        if draft.status in ("5.0.0", "4.0.0", "5.1.0", "4.1.0"):
            quoted = draft.diagnosis
            for quote in ("'", '"'):
                start = quoted.find(quote)
                end = quoted.rfind(quote)
                if 0 <= start < end and quoted[start + 1 : start + 2].isdigit():
                    quoted = quoted[start + 1 : end]
                    break
            draft.status = find_status(quoted) or draft.status
        if "Delivery expired" in draft.diagnosis:
            draft.reason = "expired"
    return detected
