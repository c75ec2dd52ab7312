"""How local delivery agents (the programs that write into the mailbox) word
their failures, once the MTA has quoted them in a bounce.

When Postfix or Sendmail hands a message to Dovecot's LDA, procmail or
maildrop and the program fails, the bounce carries the program's own message
("procmail: Quota exceeded while writing ..."). That text is more precise than
the MTA's status code (often a generic ``5.3.0`` or ``X-Unix``).
"""

from __future__ import annotations

__all__ = ["local_agent_reason", "names_an_agent"]

# agent -> substrings (lowercase) that name it in a diagnostic.
_AGENT_MARKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Dovecot LDA, src/lda: DEFAULT_MAIL_REJECTION_HUMAN_REASON
    # "Your message to <%t> was automatically rejected:%n%r"
    ("dovecot", ("your message to <", "> was automatically rejected:")),
    ("mail.local", ("mail.local: ",)),  # BSD mail.local(8)
    ("procmail", ("procmail: ", "/procmail ")),
    ("maildrop", ("maildrop: ",)),  # Courier maildrop
    ("vpopmail", ("vdelivermail: ",)),
    ("vmailmgr", ("vdeliver: ",)),
)

# agent -> ordered (reason, substrings) pairs, from each program's source.
_AGENT_REASONS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "dovecot": (
        # src/plugins/quota/quota.c
        ("mailboxfull", ("not enough disk space", "quota exceeded")),
        ("userunknown", ("mailbox doesn't exist: ",)),
    ),
    "mail.local": (
        ("mailboxfull", ("disc quota exceeded", "mailbox full or quota exceeded")),
        ("systemerror", ("temporary file write error",)),
        (
            "userunknown",
            (
                ": invalid mailbox path",
                ": unknown user:",
                ": user missing home directory",
                ": user unknown",
            ),
        ),
    ),
    "procmail": (
        ("mailboxfull", ("quota exceeded while writing", "user over quota")),
        ("systemerror", ("service unavailable",)),
        ("systemfull", ("no space left to finish writing",)),
    ),
    "maildrop": (
        ("mailboxfull", ("maildir over quota.",)),
        ("userunknown", ("cannot find system user", "invalid user specified.")),
    ),
    "vpopmail": (
        ("filtered", ("user does not exist, but will deliver to ",)),
        ("mailboxfull", ("domain is over quota", "user is over quota")),
        ("suspend", ("account is locked email bounced",)),
        ("userunknown", ("sorry, no mailbox here by that name.",)),
    ),
    "vmailmgr": (
        ("mailboxfull", ("delivery failed due to system quota violation",)),
        (
            "userunknown",
            (
                "invalid or unknown base user or domain",
                "invalid or unknown virtual user",
                "user name does not refer to a virtual user",
            ),
        ),
    ),
}


def local_agent_reason(diagnostic: str, command: str) -> str:
    """The reason a local delivery agent's message names, or ``""``.

    ``diagnostic`` is lowercased. Only failures after DATA (or of unknown
    command) come from a delivery agent. An agent whose message matches no
    known failure still failed to deliver: ``mailererror``.
    """
    if not diagnostic or command not in ("", "DATA"):
        return ""
    for mark, agent in _MARKS:
        if mark in diagnostic:
            for reason, phrases in _AGENT_REASONS[agent]:
                for phrase in phrases:
                    if phrase in diagnostic:
                        return reason
            return "mailererror"
    return ""


# (mark, agent), flat: the common case (no agent named) is one loop of substring tests.
_MARKS = tuple((mark, agent) for agent, marks in _AGENT_MARKS for mark in marks)


def names_an_agent(lowered: str) -> bool:
    """Whether the lowercased text quotes a local delivery agent at all (cheap)."""
    return any(mark in lowered for mark, _agent in _MARKS)
