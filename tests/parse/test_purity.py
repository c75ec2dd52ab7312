"""landed.parse is pure: importing and running it pulls in no database, network or store module."""

from __future__ import annotations

import json
import subprocess
import sys

# Never: no database, network, SMTP server or store module, no socket, and not
# even the stdlib ``email`` package (the parser reads MIME itself) or pydantic.
FORBIDDEN = (
    "sqlalchemy",
    "httpx",
    "aiosmtpd",
    "landed.store",
    "psycopg",
    "socket",
    "ssl",
    "asyncio",
    "email",
    "pydantic",
)

_CODE = """
import json, sys
import landed.parse
from landed.parse import parse
parse(b"Subject: x\\n\\nhello")
print(json.dumps(sorted(sys.modules)))
"""


def _matches(module: str, names: tuple[str, ...]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def test_no_io_modules_imported() -> None:
    done = subprocess.run([sys.executable, "-c", _CODE], check=True, capture_output=True, text=True)
    loaded = json.loads(done.stdout)
    assert sorted(m for m in loaded if _matches(m, FORBIDDEN)) == []
