"""What request handlers need, taken from ``app.state`` (see ``landed.api.app``)."""

from __future__ import annotations

from typing import cast

from fastapi import Request

from landed.clock import Clock
from landed.config import Settings
from landed.store import Database
from landed.tokens import Keyring


def get_settings(request: Request) -> Settings:
    return cast(Settings, request.app.state.settings)


def get_db(request: Request) -> Database:
    return cast(Database, request.app.state.db)


def get_clock(request: Request) -> Clock:
    return cast(Clock, request.app.state.clock)


def get_keyring(request: Request) -> Keyring:
    return cast(Keyring, request.app.state.keyring)
