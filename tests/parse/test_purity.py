"""landed.parse is pure: importing and running it pulls in no database, network or store module."""

from __future__ import annotations

import json
import subprocess
import sys

# Never, whoever imports them.
FORBIDDEN = ("sqlalchemy", "httpx", "aiosmtpd", "landed.store", "psycopg")
# Not by landed.parse itself (the ``landed`` package __init__ may already load
# them through its configuration module: pydantic imports email.utils, which
# imports socket).
NOT_BY_PARSE = ("socket", "email", "ssl", "asyncio")

_CODE = """
import json, sys
import landed
before = set(sys.modules)
import landed.parse
from landed.parse import parse
parse(b"Subject: x\\n\\nhello")
print(json.dumps({"before": sorted(before), "after": sorted(sys.modules)}))
"""


def _matches(module: str, names: tuple[str, ...]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def test_no_io_modules_imported() -> None:
    done = subprocess.run([sys.executable, "-c", _CODE], check=True, capture_output=True, text=True)
    loaded = json.loads(done.stdout)
    after = set(loaded["after"])
    added = after - set(loaded["before"])
    assert sorted(m for m in after if _matches(m, FORBIDDEN)) == []
    assert sorted(m for m in added if _matches(m, NOT_BY_PARSE)) == []
