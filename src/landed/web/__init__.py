"""What people see: tracking endpoints (``track``) and the dashboard (``dashboard``)."""

from __future__ import annotations
