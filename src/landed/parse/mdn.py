"""RFC 8098 message disposition notifications (read receipts).

``multipart/report; report-type=disposition-notification`` with a
``message/disposition-notification`` part::

    Reporting-UA: mail.example.com; Example Mail 1.0
    Original-Recipient: rfc822;bob@example.com
    Final-Recipient: rfc822;bob@example.com
    Original-Message-ID: <TOKEN@example.com>
    Disposition: manual-action/MDN-sent-manually; displayed

The disposition type (``displayed``, ``deleted``, ``dispatched``,
``processed``) is what the evidence ladder needs: ``displayed`` proves ``seen``.
"""

from __future__ import annotations

from landed.parse.draft import Detected, Draft
from landed.parse.fields import address_of
from landed.parse.mime import Mail, parse_headers

__all__ = ["read"]

_TYPES = ("message/disposition-notification", "message/global-disposition-notification")


def read(mail: Mail) -> Detected | None:
    """Read an MDN, or return None."""
    part = mail.first_part(*_TYPES)
    if part is None:
        return None
    fields = parse_headers(part.text.lstrip("\n"))
    disposition = fields.get("disposition").strip()
    # "manual-action/MDN-sent-manually; displayed/..." -> "displayed"
    kind_of = disposition.rpartition(";")[2].strip().split("/")[0].strip().lower()
    recipient = address_of(fields.get("final-recipient")) or address_of(
        fields.get("original-recipient")
    )
    detected = Detected(
        dialect="rfc8098",
        kind="mdn",
        disposition=disposition,
        reporting_mta=fields.get("reporting-ua").partition(";")[0].strip(),
    )
    detected.extra["disposition_type"] = kind_of
    original_id = fields.get("original-message-id").strip()
    if original_id:
        detected.returned = f"Message-ID: {original_id}\n"
    returned = mail.first_part("message/rfc822", "text/rfc822-headers")
    if returned is not None:
        detected.returned = returned.text + ("\n" + detected.returned if detected.returned else "")
    detected.drafts.append(
        Draft(
            recipient=recipient,
            original_recipient=address_of(fields.get("original-recipient")),
            action=kind_of,
            reason="delivered" if kind_of else "",
            diagnosis=disposition,
            spec="MDN",
        )
    )
    return detected
