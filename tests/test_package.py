"""The package's shape: the public API is pinned and the pure core stays pure."""

from __future__ import annotations

import json
import subprocess
import sys

import landed

PURE = [
    "landed.domain",
    "landed.compose",
    "landed.compose.links",
    "landed.tokens",
    "landed.parse",
    "landed.parse.providers",
    "landed.web.fetchers",
]
IO_MODULES = [
    "sqlalchemy",
    "alembic",
    "aiosmtpd",
    "httpx",
    "fastapi",
    "smtplib",
    "landed.store",
    "pydantic",
]


def test_public_api_is_pinned() -> None:
    assert sorted(landed.__all__) == sorted(
        [
            "Client", "Clock", "ConfigError", "EvidenceSource", "FixedClock",
            "HeaderInjectionError", "InputError", "LandedError", "Level", "NotFoundError",
            "Outcome", "Settings", "SystemClock", "TokenError", "TransportError",
            "__version__", "load_settings",
        ]
    )  # fmt: skip
    for name in landed.__all__:
        assert getattr(landed, name) is not None


def test_pure_core_imports_no_io() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {PURE!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(done.stdout))
    leaked = sorted(m for m in IO_MODULES if m in loaded)
    assert leaked == [], f"the pure core imported {leaked}"
