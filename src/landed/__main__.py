"""``python -m landed``: the same as the ``landed`` command."""

from __future__ import annotations

from landed.cli import main

main()
