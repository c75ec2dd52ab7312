"""``landed demo``: landed with a sandbox mail world, no mail server needed.

- ``world``: pure. Who lives in the sandbox and what their mailboxes do; the
  notifications the demo sends, and its policies.
- ``reports``: pure. The messages the sandbox sends back: RFC 3464 delivery
  status notifications and RFC 3834 out-of-office replies.
- ``sandbox``: I/O. The sandbox's SMTP server (landed's relay), the courier that
  returns reports through landed's *real* inbound SMTP listener, and the people
  who press the acknowledgement button.
- ``session``: I/O. A fresh ledger, demo settings, ``landed up`` (the
  ``Service``), a dashboard login, and the notifications.
"""

from __future__ import annotations
