"""A private Dovecot (IMAP only) on a loopback port, for tests.

Adapted from the recipe in shared/notes/postfix-loopback.md, with one
difference: mail users live in a passwd-file with their own uid and home (the
``nobody`` uid), so no system user has to be created. Needs root (Dovecot
drops to that uid to touch the mailboxes) and Debian's dovecot-imapd.

    with Dovecot() as server:
        server.add_user("bounces", "secret")
        server.deliver("bounces", raw_bytes)
        url = server.url("bounces", "secret")     # imap://bounces:secret@127.0.0.1:PORT/INBOX
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.conftest import need_service

MAIL_UID = 65534  # nobody


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
instance_name = dovecot-landed-{port}
state_dir = {base}/state
log_path = {base}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = {uid}
last_valid_uid = {uid}
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%n {base}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service auth {{
  unix_listener auth-client {{
    mode = 0666
  }}
}}
protocol imap {{
  mail_max_userip_connections = 50
}}
"""


class Dovecot:
    def __init__(self) -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="landed-dovecot-"))
        self.config = self.base / "dovecot.conf"
        self.users: dict[str, str] = {}
        self._counter = 0

    def __enter__(self) -> Dovecot:
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not Path(binary).exists():
            need_service("Dovecot", "dovecot is not installed (apt-get install dovecot-imapd)")
        if os.geteuid() != 0:
            need_service("Dovecot", "the test Dovecot needs root")
        self.base.chmod(0o755)
        for sub in ("run", "state"):
            (self.base / sub).mkdir()
        (self.base / "passwd").write_text("")
        self.config.write_text(CONFIG.format(base=self.base, port=self.port, uid=MAIL_UID))
        # The daemon keeps the descriptors it was started with: never a pipe we wait on.
        with (self.base / "start.log").open("w") as log:
            done = subprocess.run(
                [binary, "-c", str(self.config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            message = (self.base / "start.log").read_text().strip()
            need_service("Dovecot", message or "dovecot did not start")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        need_service("Dovecot", f"nothing listens on 127.0.0.1:{self.port}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        subprocess.run(
            ["doveadm", "-c", str(self.config), "stop"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(self.base, ignore_errors=True)

    def home(self, user: str) -> Path:
        return self.base / "home" / user

    def add_user(self, user: str, password: str) -> None:
        home = self.home(user)
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True, exist_ok=True)
        for path in [home.parent, home, *home.rglob("*")]:
            os.chown(path, MAIL_UID, MAIL_UID)
        self.users[user] = password
        lines = [
            f"{name}:{{PLAIN}}{secret}:{MAIL_UID}:{MAIL_UID}::{self.home(name)}::"
            for name, secret in self.users.items()
        ]
        (self.base / "passwd").write_text("\n".join(lines) + "\n")

    def folder(self, user: str, folder: str = "INBOX") -> Path:
        """The Maildir++ directory of a folder, created if needed."""
        path = self.home(user) / "Maildir"
        if folder != "INBOX":
            path = path / f".{folder}"
        for sub in ("cur", "new", "tmp"):
            if not (path / sub).is_dir():
                (path / sub).mkdir(parents=True)
                os.chown(path, MAIL_UID, MAIL_UID)
                os.chown(path / sub, MAIL_UID, MAIL_UID)
        return path

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Drop a message into a folder, as a local delivery agent would."""
        self._counter += 1
        name = f"{time.time():.6f}.{os.getpid()}_{self._counter}.landed-test"
        path = self.folder(user, folder)
        tmp = path / "tmp" / name
        tmp.write_bytes(raw)
        os.chown(tmp, MAIL_UID, MAIL_UID)
        tmp.rename(path / "new" / name)

    def url(self, user: str, password: str, mailbox: str = "INBOX", **query: str) -> str:
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return f"imap://{user}:{password}@127.0.0.1:{self.port}/{mailbox}" + (
            f"?{params}" if params else ""
        )
