"""The ``landed`` command line.

Every command that shows data takes ``--json`` (one JSON object per line);
long-running commands stop cleanly on SIGTERM and SIGINT. Errors are one line
on stderr, never a traceback: exit status 2 for bad configuration or usage,
1 for anything else that failed.
"""

from __future__ import annotations

from landed.cli import answers, demo, inbound, operators, send, web
from landed.cli.base import cli, main

__all__ = ["answers", "cli", "demo", "inbound", "main", "operators", "send", "web"]
