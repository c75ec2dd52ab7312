"""Levels, outcomes and evidence sources (see DESIGN.md, "The evidence ladder")."""

from __future__ import annotations

from enum import StrEnum


class Level(StrEnum):
    """How far a delivery is proven to have got. Ordered: compare with ``rank``."""

    #: The notification was recorded; nothing has been sent yet.
    QUEUED = "queued"
    #: Our first hop (relay or ESP) took responsibility: a 250 / 2xx.
    SUBMITTED = "submitted"
    #: The recipient's mail system took it: DSN relayed, direct-MX 250, ESP "delivered".
    ACCEPTED = "accepted"
    #: It reached the mailbox: DSN delivered, an auto-reply from the mailbox.
    DELIVERED = "delivered"
    #: It was displayed: MDN displayed, a pixel hit that is not a machine fetch.
    SEEN = "seen"
    #: A person acted: the acknowledgement page was submitted, a reply arrived.
    ACKNOWLEDGED = "acknowledged"

    @property
    def rank(self) -> int:
        """Position on the ladder, ``queued`` = 0."""
        return _LEVEL_RANK[self]


_LEVEL_RANK = {level: i for i, level in enumerate(Level)}


class Outcome(StrEnum):
    """A negative fact about a delivery."""

    #: Temporary failure; still being retried somewhere.
    DEFERRED = "deferred"
    #: Permanent failure reported by a mail system.
    BOUNCED = "bounced"
    #: The recipient reported the message as spam (ARF, provider complaint).
    COMPLAINED = "complained"
    #: Not sent, because the address is on the suppression list.
    SUPPRESSED = "suppressed"
    #: Refused before sending (by landed or a provider's API) as unsendable.
    REJECTED = "rejected"
    #: Its time ran out (retry lifetime or policy deadline) without the level it needed.
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        """Final outcomes stick; ``deferred`` and ``expired`` yield to later proof."""
        return self not in (Outcome.DEFERRED, Outcome.EXPIRED)


class EvidenceSource(StrEnum):
    """Where a piece of evidence came from."""

    #: A reply of our first-hop SMTP server (relay) during submission.
    SMTP_REPLY = "smtp-reply"
    #: The sender worker itself (for example: retry lifetime exhausted).
    WORKER = "worker"
    #: A delivery status notification (RFC 3464).
    DSN = "dsn"
    #: A non-standard bounce message.
    BOUNCE = "bounce"
    #: A message disposition notification (RFC 8098).
    MDN = "mdn"
    #: An abuse report (RFC 5965).
    ARF = "arf"
    #: An automatic reply (RFC 3834, vacation).
    AUTOREPLY = "autoreply"
    #: A human reply.
    REPLY = "reply"
    #: An email service provider's webhook event.
    ESP_WEBHOOK = "esp-webhook"
    #: A tracking-pixel fetch.
    PIXEL = "pixel"
    #: A submitted acknowledgement page.
    ACK = "ack"
    #: A followed tracked link.
    CLICK = "click"
    #: The reconciler (deadline passed).
    RECONCILER = "reconciler"


class Attribution(StrEnum):
    """How incoming evidence was tied to a delivery, most reliable first."""

    #: The token in the VERP envelope recipient (``bounces+TOKEN@``).
    VERP = "verp"
    #: The token echoed as the DSN's Original-Envelope-Id (RFC 3461 ENVID).
    ENVID = "envid"
    #: The token in the returned message's Message-ID.
    MESSAGE_ID = "message-id"
    #: The token in our X-Landed-Token header in the returned message.
    HEADER = "header"
    #: The token in the field an email service provider echoes back in its
    #: events (custom args, metadata, tags, user variables).
    PROVIDER_FIELD = "provider-field"
    #: No token for this recipient: matched by address within the same notification.
    HEURISTIC = "heuristic"
