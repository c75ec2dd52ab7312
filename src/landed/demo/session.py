"""One run of the demo: a fresh ledger, demo settings, ``landed up`` and the sandbox.

``Demo.prepare()`` starts the sandbox relay, writes nothing outside its
directory, creates the ledger (SQLite) and a dashboard login with a random
password, and builds the ``Service`` exactly as ``landed up`` does, with two
more parts: the sandbox (its follow-ups) and the script (the notifications of
``landed.demo.world.SCRIPT``, sent at their times). ``Demo.run(stop)`` runs
them all until ``stop``.

The demo's settings come from its arguments only: ``landed.toml`` and
``LANDED_*`` variables are ignored, so a demo never touches a real relay,
ledger or signing key.
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from landed.clock import SystemClock
from landed.config import Settings, parse_hostport
from landed.demo import world
from landed.demo.sandbox import Sandbox
from landed.demo.world import Send, Timing
from landed.errors import ConfigError
from landed.service import Part, Service
from landed.store import Database
from landed.tokens import new_secret

log = logging.getLogger("landed.demo")

OPERATOR = "demo"
DEFAULT_LISTEN = "127.0.0.1:8025"


class DemoSettings(Settings):
    """Settings from the constructor's arguments only (no file, no environment)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(
    directory: Path,
    *,
    relay_url: str,
    inbound_listen: str,
    api_listen: str,
    **overrides: Any,
) -> Settings:
    """The demo's settings: short deadlines and retries, so that every kind of
    alert opens within a minute; a fresh signing key."""
    host, port = parse_hostport(api_listen)
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{directory / 'landed.db'}",
        "relay_url": relay_url,
        "from_": world.FROM,
        "bounce_domain": world.BOUNCE_DOMAIN,
        "inbound_listen": inbound_listen,
        "api_listen": api_listen,
        "public_url": f"http://{_url_host(host)}:{port}",
        "signing_keys": {"dm": new_secret()},
        "policies": world.policies(),
        "internal_domains": [world.INTERNAL_DOMAIN],
        # Frank's domain defers every attempt: retried every few seconds, and
        # given up (expired) after 20 s instead of a day.
        "retry_base_seconds": 2.0,
        "retry_max_seconds": 5.0,
        "retry_lifetime_seconds": 20.0,
        "worker_poll_seconds": 0.5,
        "suppress_for": "1h",
    }
    values.update(overrides)
    return DemoSettings(**values)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def free_port(host: str = "127.0.0.1", wanted: int = 0) -> int:
    """``wanted`` if it can be bound on ``host`` now, else a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in (wanted, 0) if wanted else (0,):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError(f"no free port on {host}")


@dataclass(frozen=True, slots=True)
class Login:
    url: str
    user: str
    password: str


class Demo:
    """landed plus the sandbox mail world, in one process (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        listen: str = DEFAULT_LISTEN,
        timing: Timing | None = None,
        script: Sequence[Send] = world.SCRIPT,
    ) -> None:
        self.directory = directory
        self.listen = listen
        self.timing = timing or Timing()
        self.script = tuple(script)
        self.service: Service | None = None
        self.sandbox: Sandbox | None = None
        self.login: Login | None = None
        self.settings: Settings | None = None

    def prepare(self) -> Login:
        """Ledger, login, sandbox relay and service, ready to run; the dashboard login."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ledger = self.directory / "landed.db"
        if ledger.exists():
            raise ConfigError(
                f"{ledger} exists: the demo starts from a fresh ledger; "
                "give --dir a new or empty directory",
                setting="dir",
            )
        host, wanted = parse_hostport(self.listen)
        api_port = free_port(host, wanted)
        if api_port != wanted:
            log.warning("%s is in use; the dashboard takes port %d", self.listen, api_port)
        inbound = ("127.0.0.1", free_port())
        sandbox = Sandbox(inbound, timing=self.timing)
        sandbox.start()
        try:
            settings = demo_settings(
                self.directory,
                relay_url=sandbox.relay_url(),
                inbound_listen=f"{inbound[0]}:{inbound[1]}",
                api_listen=f"{_url_host(host)}:{api_port}",
            )
            db = Database(settings.database_url)
            db.upgrade()
            password = secrets.token_urlsafe(12)
            from landed.store.operators import add_operator

            add_operator(db, OPERATOR, password, now=SystemClock().now())
            db.dispose()
            service = Service(settings, access_log=False)
        except BaseException:
            sandbox.stop()
            raise
        try:
            if service.http is not None:
                service.http.bind()  # a port taken meanwhile fails here, not later
        except BaseException:
            service.db.dispose()
            sandbox.stop()
            raise
        # The sandbox's relay is already listening: its part pumps follow-ups
        # and stops it at the end.
        service.parts.append(Part("sandbox", self._pump))
        service.parts.append(Part("script", self._send_script))
        self.sandbox, self.service, self.settings = sandbox, service, settings
        self.login = Login(f"{settings.public_url}/dashboard/", OPERATOR, password)
        return self.login

    def run(self, stop: threading.Event) -> bool:
        """Run until ``stop``; True if no part failed."""
        assert self.service is not None, "prepare() first"
        return self.service.run(stop)

    def _pump(self, stop: threading.Event) -> None:
        assert self.sandbox is not None
        try:
            while not stop.is_set():
                self.sandbox.pump()
                stop.wait(0.2)
        finally:
            self.sandbox.stop()

    def _send_script(self, stop: threading.Event) -> None:
        from landed.client import Client

        assert self.service is not None
        assert self.settings is not None
        started = time.monotonic()
        client = Client(self.settings, database=self.service.db)
        for item in self.script:
            if stop.wait(max(0.0, item.at - (time.monotonic() - started))):
                return
            result = client.notify_detailed(
                topic=item.topic, cls=item.cls, to=item.to, subject=item.subject, text=item.text
            )
            log.info(
                "notified %s (%s) to %s",
                item.topic,
                item.cls,
                ", ".join(f"{d.recipient} #{d.seq}" for d in result.deliveries),
            )


def banner(login: Login, directory: Path) -> str:
    """What the person who started the demo needs: where to look, and how to log in."""
    width = 72
    rule = "=" * width
    people = [f"    {r.address:<22} {r.story}" for r in world.RESIDENTS]
    return "\n".join(
        [
            rule,
            "  landed demo: notifications to a sandbox mail world (no mail server)",
            "",
            f"  dashboard   {login.url}",
            f"  user        {login.user}",
            f"  password    {login.password}",
            "",
            "  The sandbox's people:",
            *people,
            "",
            "  Evidence arrives within seconds; alerts open within a minute.",
            f"  Ledger: {directory / 'landed.db'}. Stop with Ctrl-C.",
            rule,
        ]
    )
