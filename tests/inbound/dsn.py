"""Hand-written DSNs in the shape Postfix sends them (see shared/notes/postfix-loopback.md)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rcpt:
    address: str
    action: str  # failed, delayed, delivered, relayed
    status: str
    diagnostic: str = ""


def postfix_dsn(
    rcpts: list[Rcpt],
    *,
    envid: str | None = None,
    message_id: str | None = None,
    landed_token: str | None = None,
    to: str = "bounces@bounce.test",
) -> bytes:
    """An RFC 3464 report like Postfix 3.7's, with the original headers returned (RET=HDRS)."""
    per_recipient = []
    for r in rcpts:
        block = [
            f"Final-Recipient: rfc822; {r.address}",
            f"Original-Recipient: rfc822;{r.address}",
            f"Action: {r.action}",
            f"Status: {r.status}",
        ]
        if r.diagnostic:
            block.append(f"Diagnostic-Code: smtp; {r.diagnostic}")
        per_recipient.append("\n".join(block))
    per_message = ["Reporting-MTA: dns; mx.corp.test", "X-Postfix-Queue-ID: 4F3A2B1C9D"]
    if envid:
        per_message.insert(0, f"Original-Envelope-Id: {envid}")
    returned = ["From: Alerts <alerts@corp.test>", "Subject: [INC-1] Database down"]
    if message_id:
        returned.append(f"Message-ID: {message_id}")
    if landed_token:
        returned.append(f"X-Landed-Token: {landed_token}")
    failed = any(r.action == "failed" for r in rcpts)
    subject = "Undelivered Mail Returned to Sender" if failed else "Successful Mail Delivery Report"
    text = "\n".join(
        [
            "From: MAILER-DAEMON@mx.corp.test (Mail Delivery System)",
            f"Subject: {subject}",
            f"To: {to}",
            "Auto-Submitted: auto-replied",
            "MIME-Version: 1.0",
            'Content-Type: multipart/report; report-type=delivery-status; boundary="BOUNDARY"',
            "Message-Id: <20261128120000.4F3A2B1C9D@mx.corp.test>",
            "",
            "--BOUNDARY",
            "Content-Description: Notification",
            "Content-Type: text/plain; charset=us-ascii",
            "",
            "This is the mail system at host mx.corp.test.",
            "",
            "--BOUNDARY",
            "Content-Description: Delivery report",
            "Content-Type: message/delivery-status",
            "",
            "\n".join(per_message),
            "",
            "\n\n".join(per_recipient),
            "",
            "--BOUNDARY",
            "Content-Description: Undelivered Message Headers",
            "Content-Type: text/rfc822-headers",
            "",
            "\n".join(returned),
            "",
            "--BOUNDARY--",
            "",
        ]
    )
    return text.replace("\n", "\r\n").encode()
