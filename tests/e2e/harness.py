"""A private Postfix and Dovecot on loopback, for landed's end-to-end tests.

After the loopback recipe in the project's shared notes (``postfix-loopback.md``),
adapted: the templates in ``tests/e2e/postfix/`` are rendered into a fresh
directory under ``/tmp`` (not pytest's ``tmp_path``: Postfix's daemons and
the mail users must be able to reach it, and ``/tmp/pytest-of-root`` is 0700).

- Postfix: own ``config_directory``, ``queue_directory`` and
  ``data_directory``; smtpd and a submission port (SASL AUTH via Dovecot) on
  127.0.0.1 only; no chroot; local delivery of ``corp.test`` into
  ``ROOT/mail/USER/`` (Maildir); ``relay.test``, ``slow.test`` and
  ``bounce.test`` go to loopback ports given by the caller (see
  ``postfix/transport``); fast queue timings (:class:`Timings`).
- Dovecot: IMAP on a loopback port, users from a passwd-file (plaintext,
  loopback only), serving the Maildirs Postfix delivers into.
- Mail users are system users (``useradd``, idempotent; needs root). Their
  mail lives under ``ROOT``, so every run starts with empty mailboxes.

Start as root: ``MailServer(root, relay_port=..., slow_port=..., bounce_port=...).start()``;
``stop()`` stops both servers (``postfix -c DIR stop``, ``doveadm -c FILE stop``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TEMPLATES = Path(__file__).parent / "postfix"
_PLACEHOLDER = re.compile(r"@[A-Z][A-Z_]*@")

#: System users that receive mail (``USER@corp.test``) and their IMAP passwords.
#: ``bounces`` receives ``bounces+TOKEN@corp.test`` (recipient_delimiter ``+``).
USERS = {"alice": "alice-e2e-secret", "bounces": "bounces-e2e-secret"}

POSTFIX = "/usr/sbin/postfix"
DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"


class HarnessError(RuntimeError):
    """The mail servers could not be set up (missing, not root, failed to start)."""


@dataclass(frozen=True)
class Timings:
    """Postfix queue timings (Postfix time syntax), small so that DSNs come in seconds.

    - ``delay_warning``: the delay DSN goes out at the end of the first failed
      delivery attempt for which ``now >= arrival + delay_warning - 1 s``
      (Postfix 3.7, ``qmgr_active.c``: ``event_time() >= warn_time - 1``). With
      ``1s`` that is the very first attempt: the delay DSN follows the first
      4xx at once (measured: ~0.1 s). ``0`` would turn delay DSNs off.
    - ``queue_lifetime`` (also used for ``bounce_queue_lifetime``): after it,
      the next failed attempt ends in ``Action: failed`` with the last 4.x.x
      status. Postfix caps the lifetime of DSNs themselves at this value.
    - ``backoff_min``/``backoff_max``/``queue_run_delay``: how soon a deferred
      message is tried again, so the expiry is noticed about 0-2 s after
      ``queue_lifetime``.
    """

    queue_run_delay: str = "1s"
    backoff_min: str = "1s"
    backoff_max: str = "2s"
    delay_warning: str = "1s"
    queue_lifetime: str = "12s"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, what: str = "server") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise HarnessError(f"{what} is not listening on 127.0.0.1:{port}: {exc}") from None
            time.sleep(0.05)


def render(template: str, values: dict[str, str]) -> str:
    text = (TEMPLATES / template).read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    leftover = _PLACEHOLDER.findall(text)
    if leftover:
        raise HarnessError(f"{template}: placeholders left: {sorted(set(leftover))}")
    return text


def _run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command; its output goes through a file, not a pipe.

    ``postfix start`` and ``dovecot`` leave daemons behind that may inherit
    stdout/stderr: with pipes, waiting for end of output would never finish.
    """
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            text=True,
        )
        out.seek(0)
        return subprocess.CompletedProcess(argv, done.returncode, out.read(), "")


def check_prerequisites() -> None:
    """Raise :class:`HarnessError` saying why the harness cannot run here."""
    if os.geteuid() != 0:
        raise HarnessError("needs root (system mail users, Postfix and Dovecot as root)")
    for path, package in (
        (POSTFIX, "postfix"),
        (DOVECOT, "dovecot-core"),
        (DOVEADM, "dovecot-core"),
    ):
        if not Path(path).exists():
            raise HarnessError(f"{path} not found: install {package} (scripts/test does)")
    if not Path("/usr/lib/dovecot/imap").exists():
        raise HarnessError("Dovecot's imap server not found: install dovecot-imapd")
    for user in ("postfix", "dovecot", "dovenull"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            raise HarnessError(f"system user {user!r} missing: reinstall the packages") from None


def ensure_users() -> None:
    """Create the mail users (ordinary system users, uid >= 1000) if missing."""
    for user in USERS:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            done = _run(
                "useradd",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "landed e2e test mail user",
                user,
            )
            if done.returncode != 0:
                raise HarnessError(f"useradd {user}: {done.stdout.strip()}") from None
            entry = pwd.getpwnam(user)
        if entry.pw_uid < 1000:
            raise HarnessError(f"user {user!r} has uid {entry.pw_uid} < 1000 (Dovecot refuses it)")


class MailServer:
    """Postfix + Dovecot under ``root`` (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        *,
        relay_port: int,
        slow_port: int,
        bounce_port: int,
        timings: Timings | None = None,
    ) -> None:
        self.root = root
        self.timings = timings or Timings()
        self.relay_port = relay_port
        self.slow_port = slow_port
        self.bounce_port = bounce_port
        self.smtp_port = free_port()
        self.submission_port = free_port()
        self.imap_port = free_port()
        self.pf_conf = root / "postfix"
        self.pf_queue = root / "queue"
        self.pf_data = root / "data"
        self.log_dir = root / "log"
        self.mail_dir = root / "mail"
        self.home_dir = root / "home"
        self.dovecot_dir = root / "dovecot"
        self.dovecot_base = root / "dovecot-run"
        self.dovecot_conf = self.dovecot_dir / "dovecot.conf"
        self._postfix_up = False
        self._dovecot_up = False

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> MailServer:
        check_prerequisites()
        ensure_users()
        self._render()
        try:
            self._start_dovecot()
            self._start_postfix()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._postfix_up:
            self._postfix_up = False
            _run(POSTFIX, "-c", str(self.pf_conf), "stop")
        if self._dovecot_up:
            self._dovecot_up = False
            _run(DOVEADM, "-c", str(self.dovecot_conf), "stop")
        # master and dovecot exit asynchronously; wait so the directory can go.
        for pidfile in (self.pf_queue / "pid" / "master.pid", self.dovecot_base / "master.pid"):
            _wait_gone(pidfile)

    # --- addresses ----------------------------------------------------------------------

    def relay_url(self) -> str:
        """landed's relay URL for this Postfix (plain SMTP on loopback)."""
        return f"smtp://127.0.0.1:{self.smtp_port}?starttls=off&timeout=10"

    def submission_url(self, user: str) -> str:
        return (
            f"smtp://{user}:{USERS[user]}@127.0.0.1:{self.submission_port}?starttls=off&timeout=10"
        )

    def imap_url(self, user: str, mailbox: str = "INBOX") -> str:
        return f"imap://{user}:{USERS[user]}@127.0.0.1:{self.imap_port}/{mailbox}"

    def maildir(self, user: str) -> Path:
        return self.mail_dir / user

    # --- diagnostics --------------------------------------------------------------------

    def log_tail(self, lines: int = 60) -> str:
        parts = []
        for name in ("postfix.log", "dovecot.log"):
            path = self.log_dir / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {name} (last {len(text)} lines)\n" + "\n".join(text))
        queue = _run(POSTFIX, "-c", str(self.pf_conf), "status")
        parts.append(f"--- postfix status: {queue.stdout.strip()}")
        return "\n".join(parts)

    # --- internals ----------------------------------------------------------------------

    def _values(self) -> dict[str, str]:
        t = self.timings
        return {
            "PF_CONF": str(self.pf_conf),
            "PF_QUEUE": str(self.pf_queue),
            "PF_DATA": str(self.pf_data),
            "LOG_DIR": str(self.log_dir),
            "MAIL_DIR": str(self.mail_dir),
            "HOME_DIR": str(self.home_dir),
            "STATE_DIR": str(self.dovecot_dir / "state"),
            "DOVECOT_BASE": str(self.dovecot_base),
            "DOVECOT_INSTANCE": f"dovecot-{self.root.name}",
            "DOVECOT_CONF_DIR": str(self.dovecot_dir),
            "PORT_SMTP": str(self.smtp_port),
            "PORT_SUBMISSION": str(self.submission_port),
            "PORT_IMAP": str(self.imap_port),
            "PORT_RELAY": str(self.relay_port),
            "PORT_SLOW": str(self.slow_port),
            "PORT_BOUNCE": str(self.bounce_port),
            "QUEUE_RUN_DELAY": t.queue_run_delay,
            "BACKOFF_MIN": t.backoff_min,
            "BACKOFF_MAX": t.backoff_max,
            "DELAY_WARNING": t.delay_warning,
            "QUEUE_LIFETIME": t.queue_lifetime,
        }

    def _render(self) -> None:
        values = self._values()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for d in (self.pf_conf, self.pf_queue, self.log_dir, self.dovecot_dir):
            d.mkdir(exist_ok=True)
        # Written by the mail users themselves (local(8) and imap run as the recipient).
        for d in (self.mail_dir, self.home_dir):
            d.mkdir(exist_ok=True)
            d.chmod(0o1777)
        for name in ("main.cf", "master.cf", "transport", "aliases"):
            (self.pf_conf / name).write_text(render(name, values))
        self.dovecot_conf.write_text(render("dovecot.conf", values))
        passwd = self.dovecot_dir / "passwd"
        passwd.write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in USERS.items()))
        # Read by Dovecot's auth process, which runs as the dovecot user.
        os.chown(passwd, 0, pwd.getpwnam("dovecot").pw_gid)
        passwd.chmod(0o640)

    def _start_postfix(self) -> None:
        conf = str(self.pf_conf)
        check = _run(POSTFIX, "-c", conf, "check")
        if check.returncode != 0:
            raise HarnessError(f"postfix check failed: {check.stdout.strip()}")
        started = _run(POSTFIX, "-c", conf, "start")
        if started.returncode != 0:
            raise HarnessError(f"postfix start failed: {started.stdout.strip()}\n{self.log_tail()}")
        self._postfix_up = True
        wait_for_port(self.smtp_port, what="Postfix smtpd")
        wait_for_port(self.submission_port, what="Postfix submission")

    def _start_dovecot(self) -> None:
        started = _run(DOVECOT, "-c", str(self.dovecot_conf))
        if started.returncode != 0:
            raise HarnessError(f"dovecot failed to start: {started.stdout.strip()}")
        self._dovecot_up = True
        wait_for_port(self.imap_port, what="Dovecot IMAP")
        _wait_exists(self.dovecot_base / "auth-client")


def _wait_gone(path: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text().split()[0])
            os.kill(pid, 0)
            time.sleep(0.05)
            continue
        return


def _wait_exists(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise HarnessError(f"{path} did not appear")
        time.sleep(0.05)


def remove_tree(root: Path) -> None:
    shutil.rmtree(root, ignore_errors=True)
