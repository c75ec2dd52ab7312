"""Sendmail (V8 and Sendmail Sentrion) bounces and delay warnings.

Subjects ``Returned mail: see transcript for details`` and ``Warning: could
not send message for past 4 hours``. The human part carries the SMTP
transcript (savemail.c), which the DSN part lacks::

       ----- Transcript of session follows -----
    ... while talking to mx.example.jp.:
    >>> RCPT To:<kijitora@example.jp>
    <<< 550 5.1.1 <kijitora@example.jp>... User Unknown
    550 5.1.1 <kijitora@example.jp>... User unknown

The ``>>>`` line gives the command, the ``<<<`` lines the remote reply (more
precise than Sendmail's own summary line below them).
"""

from __future__ import annotations

from landed.parse import dsn
from landed.parse.draft import Detected
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import squeeze
from landed.parse.reasons import aligned
from landed.parse.statuscodes import find_reply, find_status, valid_status
from landed.parse.transcript import find_command

__all__ = ["read"]

_TRANSCRIPT = "   ----- Transcript of session follows -----"  # savemail.c
_TALKING = "... while talking to "


def _is_sendmail(mail: Mail) -> bool:
    # AOL's MTA imitates Sendmail's subjects; it has its own reader.
    if "x-aol-ip" in mail.headers:
        return False
    subject = mail.headers.get("subject")
    return subject.startswith("Warning: ") or subject.endswith("see transcript for details")


def read(mail: Mail) -> Detected | None:
    """Read a Sendmail bounce."""
    if not _is_sendmail(mail):
        return None
    fields = dsn.dsn_fields(mail)
    human = dsn.human_text(mail) if mail.ctype.startswith("multipart/") else mail.body
    if fields is None or not fields.records:
        inline = dsn.inline_fields(mail)
        if inline is None:
            return None
        fields, human = inline
    at = human.find(_TRANSCRIPT)
    if at < 0:
        return None
    command = ""
    replies: list[str] = []
    other_diagnosis = ""
    other_status = ""
    in_session = False
    for line in human[at + len(_TRANSCRIPT) :].split("\n"):
        if not line or line.startswith(" "):
            continue
        if line.startswith(">>> "):
            command = command or find_command(line)
        elif line.startswith("<<< "):
            if line[4:] not in replies:
                replies.append(line[4:])
        elif not in_session:
            if line.startswith(_TALKING):
                in_session = True
            elif line.startswith("<") and aligned(line, ("@", ">.", " ")):
                # <kijitora@example.co.jp>... Deferred: Name server: example.co.jp.:
                # host name lookup failure
                other_diagnosis = line.split(" ", 1)[1]
            elif len(find_reply(line) + find_status(line)) > 7:
                # 550 5.1.2 <kijitora@example.org>... Host unknown (Name server: ...)
                other_status = find_status(line)
                other_diagnosis += " " + line
            elif line.startswith(("Message: ", "Warning: ")):
                other_diagnosis += " " + line
    detected = dsn.read_report(mail, fields, "sendmail", human)
    count = len(detected.drafts)
    for draft in detected.drafts:
        diagnosis = draft.diagnosis
        if other_diagnosis and (not diagnosis or diagnosis.startswith(" ") or diagnosis.isdigit()):
            diagnosis = other_diagnosis
        if replies and count == 1:
            diagnosis = " ".join(replies) + " " + diagnosis
        draft.diagnosis = squeeze(diagnosis)
        draft.command = command or find_command(draft.diagnosis) or ("EHLO" if replies else "")
        if other_status and not valid_status(draft.status):
            draft.status = other_status
    return detected if detected.drafts else None
