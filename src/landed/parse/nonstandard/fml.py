"""fml, the Japanese mailing list manager (``X-MLServer``, ``From: xxx-admin@``,
Message-IDs ``<NNN.FML...@...>``): refusals of posts by non-members, loops."""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_RECIPIENT = re.compile(r"<([^ ]+?@[^ ]+?)>\.$")
_TEXT = (
    (
        "rejected",
        re.compile(
            r"(?:Ignored )*NOT MEMBER article from |"
            r"reject (?:mail from .+@.+|since .+ header may cause mail loop|spammers:)|"
            r"You are not a member of this mailing list"
        ),
    ),
    (
        "systemerror",
        re.compile(
            r"Duplicated Message-ID|fml .+ has detected a loop condition so that|Loop Back Warning:"
        ),
    ),
    ("securityerror", re.compile(r"Security alert:")),
)
_SUBJECT = (
    (
        "rejected",
        re.compile(
            r"(?:Ignored )*NOT MEMBER article from |reject mail (?:.+:|from) ,|"
            r"Spam mail from a spammer is rejected|You .+ are not member"
        ),
    ),
    (
        "systemerror",
        re.compile(
            r"fml system error message|Loop Alert: |Loop Back Warning: |WARNING: UNIX FROM Loop"
        ),
    ),
    ("securityerror", re.compile(r"Security Alert")),
)


def read(mail: Mail) -> Detected | None:
    """Read an fml error notice."""
    headers = mail.headers
    if "x-mlserver" not in headers or not re.search(r".+-admin@.+", headers.get("from")):
        return None
    if not re.match(r"^<\d+\.FML.+@.+>$", headers.get("message-id")):
        return None
    explanation, returned = cut(mail.body, ("Original mail as follows:",))
    drafts: list[Draft] = []
    for line in explanation.split("\n"):
        if not line:
            continue
        match = _RECIPIENT.search(line)
        if match is not None:
            drafts.append(Draft(recipient=match.group(1), diagnosis=line))
        elif drafts:
            drafts[-1].diagnosis += line
    subject = headers.get("subject")
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
        draft.reason = next((r for r, p in _TEXT if p.search(draft.diagnosis)), "")
        draft.reason = draft.reason or next((r for r, p in _SUBJECT if p.search(subject)), "")
    if not drafts:
        return None
    return Detected(dialect="fml", drafts=drafts, returned=returned.partition("\n")[2])
