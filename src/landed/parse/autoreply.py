"""RFC 3834 automatic replies: vacation and out-of-office messages.

An auto-reply proves the mailbox exists and someone's software read the
message (``delivered`` on the evidence ladder). It is recognized by headers
first, then by localized subjects:

* ``Auto-Submitted: auto-replied`` (RFC 3834 §5), set by Gmail's vacation
  responder, Sieve ``vacation`` (Dovecot Pigeonhole), Postfix/``vacation(1)``;
* ``X-Autoreply`` / ``X-Autorespond`` (cPanel, Exim filters, qmail autoresponders);
* ``Precedence: auto_reply``;
* ``X-Apple-Action: VACATION`` (iCloud Mail);
* ``X-MS-Exchange-Inbox-Rules-Loop`` with ``X-Auto-Response-Suppress``
  (Exchange / Microsoft 365 out-of-office, which sets no Auto-Submitted);
* the subject prefix the client writes in the user's language (Exchange and
  Outlook "Automatic reply:", Gmail and Apple "Auto reply:"/"Out of Office").

Bounces also carry ``Auto-Submitted: auto-replied`` (Postfix sets it on every
bounce), so this detector runs last and refuses anything from a mailer daemon.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.fields import address_of
from landed.parse.mime import Mail

__all__ = ["read"]

# Localized out-of-office subject prefixes (lowercase), by client:
# Exchange/Outlook ("Automatic reply:" in 30+ languages), Gmail/Apple ("Auto reply",
# "Out of Office"), Lotus Notes ("is out of the office").
_SUBJECTS = re.compile(
    r"^\s*(?:"
    r"auto(?:matic)?[ -]?(?:reply|response|respons|answer)"
    r"|autoreply|autoresponse|auto:"
    r"|out of (?:the )?office"
    r"|away until|on vacation|vacation reply|i am away"
    r"|abwesenheitsnotiz|automatische antwort|abwesend"  # German
    r"|réponse automatique|reponse automatique|absence du bureau"  # French
    r"|respuesta automática|respuesta automatica|fuera de la oficina"  # Spanish
    r"|risposta automatica|fuori sede"  # Italian
    r"|automatisch antwoord|afwezig"  # Dutch
    r"|resposta automática|resposta automatica|ausência temporária"  # Portuguese
    r"|autosvar|frånvaro"  # Swedish, Danish, Norwegian
    r"|automaattinen vastaus"  # Finnish
    r"|automatická odpověď"  # Czech
    r"|automatyczna odpowiedź"  # Polish
    r"|automatikus válasz"  # Hungarian
    r"|otomatik yanıt"  # Turkish
    r"|αυτόματη απάντηση"  # Greek
    r"|автоматический ответ|автоответ"  # Russian
    r"|自動回覆|自动回复|自動応答|自動返信|不在通知"  # Chinese, Japanese
    r"|자동 회신|자동 응답"  # Korean
    r")",
    re.I,
)
# Lotus Notes: "Kijitora is out of the office."
_NOTES = re.compile(r"\bis out of the office\b", re.I)
_DAEMON = re.compile(r"mailer-daemon|postmaster|mail delivery|mail administrator", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|undelivered|delivery (?:status|failure|notification|report)|returned mail|"
    r"failure notice|mail delivery|non[- ]?remis|nicht zustellbar|could not be delivered|"
    r"delivery has failed|message delayed|warning:",
    re.I,
)
# An auto-reply that says the mailbox is gone is a bounce in disguise
# (Mimecast and Microsoft 365 "this mailbox is no longer monitored" rules).
_RETIRED = re.compile(
    r"(?:inbox|mailbox|address|account)\b[^\n]{0,80}?\bno longer (?:in use|active|monitored|valid)"
    r"|no longer (?:works|working) (?:at|for|with)",
    re.I,
)


def _is_autoreply(mail: Mail, subject: str) -> bool:
    headers = mail.headers
    auto = headers.get("auto-submitted").lower()
    if auto.startswith("auto-replied"):
        return True
    if "x-autoreply" in headers or "x-autorespond" in headers or "x-autoresponder" in headers:
        return True
    if headers.get("precedence").lower().strip() == "auto_reply":
        return True
    if headers.get("x-apple-action").lower().startswith("vacation"):
        return True
    if "x-ms-exchange-inbox-rules-loop" in headers and "x-auto-response-suppress" in headers:
        return True
    return _SUBJECTS.match(subject) is not None or _NOTES.search(subject) is not None


def read(mail: Mail) -> Detected | None:
    """Read an automatic reply, or return None."""
    subject = mail.subject
    sender = mail.headers.get("from")
    if _DAEMON.search(sender) or _BOUNCE_SUBJECT.search(subject):
        return None
    if any(p.ctype in ("message/delivery-status", "message/feedback-report") for p in mail.parts):
        return None
    if not _is_autoreply(mail, subject):
        return None
    recipient = address_of(sender)
    body = mail.body[:2000]
    draft = Draft(recipient=recipient, reason="vacation", diagnosis=" ".join(body.split())[:500])
    detected = Detected(dialect="rfc3834", drafts=[draft], kind="autoreply")
    if _RETIRED.search(body):
        draft.reason = "suspend"
        detected.kind = ""
    return detected
