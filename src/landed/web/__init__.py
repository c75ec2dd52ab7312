"""What people see over HTTP: the tracking endpoints (``track``: acknowledgement
page, open pixel, click-through; machine detection in ``fetchers``) and the
dashboard (``dashboard``, with ``session``, ``charts`` and ``rendering``)."""

from __future__ import annotations
