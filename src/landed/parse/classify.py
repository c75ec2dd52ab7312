"""From a detector's :class:`~landed.parse.draft.Draft` to a
:class:`~landed.parse.report.RecipientReport`: status, reason, hard/soft.

The reason is decided in this order:

1. a reason the dialect is sure of (its wording is unambiguous), unless it is
   one of the vague ones (``userunknown``, ``expired``, ...) worth a second look;
2. a local delivery agent's own message (:mod:`~landed.parse.localagents`);
3. the receiving provider's documented wording (:mod:`~landed.parse.receivers`),
   when the remote host or the recipient's domain is a known provider;
4. the status code and the diagnostic text together (:func:`decide`), first
   with the reasons that the text or code name precisely (mailbox full, user
   unknown, blocked ...), then with the broader ones (policy, system, network).

The order and the tie-breaks between a status code and the text follow
Sisimai's, whose opinion the corpus records: a ``5.1.1`` next to "mailbox
full" text is taken as mailbox full, a "user unknown" answer to the DATA
command as ``filtered`` (a content filter pretending the user does not exist).
"""

from __future__ import annotations

import re

from landed.parse import receivers
from landed.parse.draft import Draft
from landed.parse.localagents import local_agent_reason
from landed.parse.reasons import PHRASES, words_of
from landed.parse.receivers.microsoft import ndr_name_reason
from landed.parse.report import RecipientReport, Token
from landed.parse.statuscodes import (
    find_reply,
    find_status,
    is_temporary,
    prefer,
    reason_of_status,
    sisimai_pseudo,
    valid_reply,
)

__all__ = ["Facts", "decide", "finish"]

# Commands sent before DATA: a rejection there cannot be about the content.
_BEFORE_DATA = frozenset({"CONN", "EHLO", "HELO", "MAIL", "RCPT"})
# Reasons worth a second look even when a dialect set them.
_VAGUE = frozenset(
    {"", "undefined", "onhold", "systemerror", "securityerror", "expired", "networkerror",
     "hostunknown", "userunknown"}
)  # fmt: skip
_NOT_EXPLICIT = frozenset({"", "undefined", "onhold"})
_HTML = re.compile(r"<html>.*</html>", re.I | re.S)
_BOUNDARY_TAIL = re.compile(r" -{2,}[^ \t].+\Z", re.S)
_ACTIONS = {
    "failed": "failed",
    "failure": "failed",
    "fail": "failed",
    "delayed": "delayed",
    "delay": "delayed",
    "expired": "failed",
    "delivered": "delivered",
    "deliverable": "delivered",
    "relayed": "relayed",
    "expanded": "expanded",
}


class Facts:
    """The inputs of the reason decision for one recipient."""

    __slots__ = (
        "_said",
        "_words",
        "action",
        "by_status",
        "command",
        "diagnostic",
        "preset",
        "reply",
        "spec",
        "status",
        "text",
    )

    def __init__(
        self,
        *,
        status: str,
        diagnostic: str,
        command: str = "",
        reply: str = "",
        spec: str = "SMTP",
        action: str = "",
        preset: str = "",
    ) -> None:
        self.status = status
        self.diagnostic = diagnostic
        self.text = diagnostic.lower()
        self.command = command
        self.reply = reply
        self.spec = spec
        self.action = action
        self.preset = preset
        #: The reason the status code names by itself ("" if none).
        self.by_status = reason_of_status(status)
        self._said: dict[str, bool] = {}
        self._words: frozenset[str] | None = None

    def says(self, reason: str) -> bool:
        """Whether the diagnostic words ``reason`` (memoized: probes ask repeatedly)."""
        said = self._said.get(reason)
        if said is None:
            words = self._words
            if words is None:
                words = self._words = words_of(self.text)
            said = self._said[reason] = _MATCHERS[reason](self.text, words)
        return said


# Each reason's bound matcher, looked up once per question.
_MATCHERS = {reason: phrases.match for reason, phrases in PHRASES.items()}


# --- first round: reasons that a code or a precise phrase names ------------------


def _mailboxfull(f: Facts) -> bool:
    return f.by_status == "mailboxfull" or f.says("mailboxfull")


def _mesgtoobig(f: Facts) -> bool:
    by_status = f.by_status
    if by_status == "mesgtoobig":
        return True
    if by_status == "exceedlimit" or f.status == "5.2.3":
        return False
    return f.says("mesgtoobig")


def _exceedlimit(f: Facts) -> bool:
    return f.by_status == "exceedlimit" or f.says("exceedlimit")


def _suspend(f: Facts) -> bool:
    # 525: "user account disabled" (RFC 5248)
    return f.reply == "525" or f.says("suspend")


def _hasmoved(f: Facts) -> bool:
    return f.says("hasmoved")


def _norelaying(f: Facts) -> bool:
    if f.preset in ("securityerror", "systemerror", "undefined"):
        return False
    if f.command in ("CONN", "EHLO", "HELO"):
        return False
    return f.says("norelaying")


def _authfailure(f: Facts) -> bool:
    return f.by_status == "authfailure" or f.says("authfailure")


# A 5.1.1 is trusted unless the text names one of these instead.
_USERUNKNOWN_RIVALS = ("norelaying", "blocked", "mailboxfull", "hasmoved", "rejected", "notaccept")


def _userunknown(f: Facts) -> bool:
    if f.preset == "userunknown":
        return True
    by_status = f.by_status
    if by_status == "suspend":
        return False
    if by_status == "userunknown":
        return not any(f.says(rival) for rival in _USERUNKNOWN_RIVALS)
    return f.command == "RCPT" and f.says("userunknown")


def _filtered(f: Facts) -> bool:
    by_status = f.by_status
    if by_status == "suspend":
        return False
    if by_status != "filtered" and f.command in _BEFORE_DATA:
        # Before DATA nothing of the content was seen: not a content filter.
        return False
    return f.says("filtered") or f.says("userunknown")


def _requireptr(f: Facts) -> bool:
    return f.by_status == "requireptr" or f.says("requireptr")


def _notcompliantrfc(f: Facts) -> bool:
    return f.says("notcompliantrfc")


def _badreputation(f: Facts) -> bool:
    return f.says("badreputation")


def _contenterror(f: Facts) -> bool:
    if _spamdetected(f):
        return False
    return f.by_status == "contenterror" or f.says("contenterror")


def _rejected(f: Facts) -> bool:
    by_status = f.by_status or "undefined"
    if by_status == "rejected":
        return True
    if f.command == "MAIL":
        return f.says("rejected")
    if f.command == "DATA":
        return by_status != "userunknown" and f.says("rejected")
    if by_status in _NOT_EXPLICIT or by_status in ("securityerror", "systemerror"):
        return f.says("rejected")
    return False


def _hostunknown(f: Facts) -> bool:
    if f.by_status == "hostunknown":
        # A DNS failure also gets 5.1.2 from some MTAs; that is a network error.
        return not f.says("networkerror")
    return f.says("hostunknown")


def _spamdetected(f: Facts) -> bool:
    if not f.status:
        return False
    if f.by_status == "spamdetected":
        return True
    if f.command in _BEFORE_DATA:
        return False
    return f.says("spamdetected")


def _speeding(f: Facts) -> bool:
    return f.says("speeding")


def _toomanyconn(f: Facts) -> bool:
    return f.by_status == "toomanyconn" or f.says("toomanyconn")


def _blocked(f: Facts) -> bool:
    return f.by_status == "blocked" or f.says("blocked")


_FIRST_ROUND = (
    ("mailboxfull", _mailboxfull),
    ("mesgtoobig", _mesgtoobig),
    ("exceedlimit", _exceedlimit),
    ("suspend", _suspend),
    ("hasmoved", _hasmoved),
    ("norelaying", _norelaying),
    ("authfailure", _authfailure),
    ("userunknown", _userunknown),
    ("filtered", _filtered),
    ("requireptr", _requireptr),
    ("notcompliantrfc", _notcompliantrfc),
    ("badreputation", _badreputation),
    ("contenterror", _contenterror),
    ("rejected", _rejected),
    ("hostunknown", _hostunknown),
    ("spamdetected", _spamdetected),
    ("speeding", _speeding),
    ("toomanyconn", _toomanyconn),
    ("blocked", _blocked),
)

# Second round: broader reasons, by text only.
_SECOND_ROUND = (
    "mailboxfull",
    "authfailure",
    "badreputation",
    "speeding",
    "spamdetected",
    "virusdetected",
    "policyviolation",
    "norelaying",
    "systemerror",
    "networkerror",
    "suspend",
    "contenterror",
    "systemfull",
    "notaccept",
    "expired",
    "failedstarttls",
    "securityerror",
    "mailererror",
)


def _second_round(f: Facts) -> str:
    if f.preset not in _NOT_EXPLICIT:
        return f.preset
    by_status = f.by_status
    if by_status in _VAGUE or f.spec != "SMTP":
        for reason in _SECOND_ROUND:
            if f.says(reason):
                return reason
        if by_status:
            return by_status
        subject = f.status[:3]
        if subject in ("5.6", "4.6"):
            return "contenterror"
        if subject in ("5.7", "4.7"):
            return "securityerror"
        if f.spec.startswith("X-UNIX"):
            return "mailererror"
        if f.reply.isdigit() and (400 < int(f.reply) < 408 or 500 < int(f.reply) < 508):
            return "syntaxerror"
        if f.action in ("delayed", "expired"):
            return "expired"
        if f.command in ("EHLO", "HELO"):
            return "blocked"
    return by_status


def decide(f: Facts) -> str:
    """The reason for ``f`` from its status code and diagnostic text."""
    if f.preset and f.preset not in _VAGUE:
        return f.preset
    if f.status.startswith("2."):
        return "delivered"
    reason = ""
    if f.spec in ("SMTP", ""):
        for name, probe in _FIRST_ROUND:
            if probe(f):
                reason = name
                break
    if reason:
        return reason
    reason = _second_round(f)
    if reason == "undefined":
        reason = ""
    if not reason and f.action == "delayed":
        reason = "expired"
    if reason:
        return reason
    if f.says("vacation"):
        return "vacation"
    return "onhold" if f.text else "undefined"


def _clean_diagnostic(text: str, reply: str, status: str) -> str:
    if reply and reply + "-" in text:
        # A multi-line reply ("550-5.7.1 ... / 550 5.7.1 ..."): drop the repeated
        # code prefixes so the sentence reads as one.
        for sep in ("-", " "):
            text = text.replace(reply + sep + status, "")
            text = text.replace(reply + sep, "")
        if reply in text:
            text = f"{reply} {status} {text}"
    if "<html>" in text.lower():
        text = _HTML.sub(" ", text)
    text = " ".join(text.split())
    return _BOUNDARY_TAIL.sub("", text) if " --" in text else text


def _is_pseudo(status: str) -> bool:
    return len(status) == 7 and status[1:5] == ".0.9"


def _hard(reason: str, status: str, text: str) -> bool | None:
    if reason in ("delivered", "feedback", "vacation"):
        return None
    if reason in ("hasmoved", "userunknown", "hostunknown"):
        return True
    if reason != "notaccept":
        return False
    if not text.strip():
        return True
    code = find_status(text) or find_reply(text)
    return code.startswith("5") or not is_temporary(text)


def finish(
    draft: Draft,
    *,
    envid: str = "",
    tokens: tuple[Token, ...] = (),
    reporting_mta: str = "",
) -> RecipientReport:
    """Classify one draft into the recipient's report."""
    raw = draft.diagnosis.replace("\r", "")
    in_text = find_status(raw)
    reply = find_reply(raw, in_text)
    status = prefer(draft.status, in_text, reply)
    diagnostic = _clean_diagnostic(raw, reply, in_text) if raw else ""
    reply_code = draft.reply_code or reply
    spec = draft.spec.upper()
    if not spec:
        spec = "X-UNIX" if draft.reason == "mailererror" else "SMTP"
        if draft.reason in ("feedback", "vacation"):
            spec = ""
    action = _ACTIONS.get(draft.action.lower().strip(), draft.action.lower().strip())
    recipient = draft.recipient.lower() or None
    domain = recipient.rpartition("@")[2] if recipient else ""

    reason = draft.reason
    if reason in _VAGUE:
        facts = Facts(
            status=status,
            diagnostic=diagnostic,
            command=draft.command,
            reply=reply_code,
            spec=spec,
            # As written: "Action: expired" (SendGrid) says why, though it reports as failed.
            action="expired" if draft.action.lower().strip() == "expired" else action,
            preset=reason,
        )
        found = local_agent_reason(facts.text, draft.command)
        if found in _NOT_EXPLICIT and (
            "RESOLVER." in diagnostic or "QUEUE." in diagnostic or "SMTPSEND." in diagnostic
        ):
            found = ndr_name_reason(diagnostic)
        if found in _NOT_EXPLICIT:
            found = receivers.reason(
                facts, domain=domain, remote=draft.remote_mta, local=reporting_mta
            )
        if found in _NOT_EXPLICIT:
            found = decide(facts)
        if found in _NOT_EXPLICIT:
            found = "onhold" if diagnostic else (reason or "undefined")
        reason = found

    hard = _hard(reason, status, f"{status} {diagnostic}".strip() if reason == "notaccept" else "")
    if not status and reason not in ("delivered", "feedback", "vacation"):
        status = sisimai_pseudo(reason, is_temporary(f"{reply_code} {diagnostic}".strip()))
    # A code made up from the wording (Sisimai's X.0.9NN) is reported as what it
    # is: the class only, "other or undefined status" (RFC 3463 X.0.0).
    inferred = _is_pseudo(status)
    if inferred:
        status = f"{status[0]}.0.0"
    if reply_code and status and reply_code[0] != status[0]:
        # The reply code of another line (or a different class): look again.
        again = find_reply(diagnostic, status[0])
        reply_code = again if again.startswith(status[0]) else ""
    if reply_code and not valid_reply(reply_code):
        reply_code = ""
    if reason == "delivered":
        action = action or "delivered"
    elif not action and status[:1] in ("4", "5"):
        action = "failed"
    return RecipientReport(
        recipient=recipient,
        original_recipient=draft.original_recipient.lower() or None,
        action=action,
        status=status,
        status_inferred=inferred,
        reason=reason,
        hard=hard,
        diagnostic=diagnostic,
        diagnostic_type=spec,
        reply_code=reply_code,
        smtp_command=draft.command,
        remote_mta=draft.remote_mta,
        reporting_mta=draft.reporting_mta or reporting_mta,
        feedback_type=draft.feedback_type,
        envid=envid,
        tokens=tokens,
    )
