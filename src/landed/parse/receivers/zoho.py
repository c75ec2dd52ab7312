"""Zoho Mail (zoho.com/mail/help/spam-reason.html, smtpfieldmanual.com/provider/zoho)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = (".zoho.com", ".zohomail.com")

_MESSAGES = (
    ("authfailure", "Email rejected per DMARC policy"),
    ("blocked", "Greylisted, try again after some time"),
    ("rejected", "Email cannot be delivered. Reason: Email flagged as Spam"),
    ("rejected", "Mail rejected by destination domain"),
    ("policyviolation", "Email policy violation detected"),
    ("policyviolation", "Mailbox delivery restricted by policy error"),
    ("systemerror", "Temporary System Error"),
    ("userunknown", "User does not exist"),
    ("virusdetected", " detected by Zoho Mail"),
)


def reason(facts: Facts) -> str:
    """Zoho's wording."""
    return next((r for r, m in _MESSAGES if m in facts.diagnostic), "")
