# Shared set-up for scripts/run and scripts/test; sourced, not run.
# Works on a fresh Debian machine: installs what is missing (as root, or with
# sudo), creates .venv, installs landed into it. Idempotent and quick when
# everything is already there.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else echo "setup: need root (or sudo) to run: $*" >&2; return 1
    fi
}

# ensure_packages PKG...: apt-get install the Debian packages not yet installed.
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "setup: installing ${missing[*]}" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# ensure_venv [EXTRA]: .venv with landed installed (editable), reinstalled when pyproject.toml changes.
ensure_venv() {
    local extra="${1:-}"
    local python="${PYTHON:-python3}"
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "setup: landed needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
        return 1
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        if ! "$python" -m venv "$VENV" 2>/dev/null; then
            rm -rf "$VENV"
            ensure_packages python3-venv
            "$python" -m venv "$VENV"
        fi
    fi
    local stamp="$VENV/.installed${extra:+-$extra}"
    if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e "$ROOT${extra:+[$extra]}"
        touch "$stamp"
    fi
}

# ensure_postgres: a PostgreSQL server on 127.0.0.1:5432 with a database "test".
# Sets LANDED_TEST_PG_URL when it had to give the postgres user a password.
ensure_postgres() {
    command -v pg_ctlcluster >/dev/null || ensure_packages postgresql
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        local version
        version="$(ls /etc/postgresql | sort -V | tail -n 1)"
        as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
        for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
    fi
    local url="${LANDED_TEST_PG_URL:-postgresql://postgres@127.0.0.1:5432/test}"
    if ! psql "$url" -qAtc 'select 1' >/dev/null 2>&1; then
        # A fresh Debian install asks for a password on TCP; give the test role one.
        as_root runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null
        as_root runuser -u postgres -- psql -qAtc "SELECT 1 FROM pg_database WHERE datname = 'test'" \
            | grep -q 1 || as_root runuser -u postgres -- createdb test
        export LANDED_TEST_PG_URL="postgresql://postgres:postgres@127.0.0.1:5432/test"
    fi
}

# ensure_postfix: Postfix and Dovecot (IMAP) for the end-to-end tests (tests/e2e).
# Installed with Postfix's "No configuration" (no /etc/postfix/main.cf), and when
# this installs them, the system's own instances are stopped at once: the tests
# run private instances on free loopback ports, and nothing may listen on 25/143.
# A Postfix or Dovecot that was already installed is left as it is.
ensure_postfix() {
    local pkgs=(postfix dovecot-core dovecot-imapd) missing=()
    for pkg in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "postfix postfix/main_mailer_type select No configuration" | as_root debconf-set-selections
    ensure_packages "${pkgs[@]}"
    local svc
    for svc in dovecot postfix; do
        if [ -d /run/systemd/system ]; then
            as_root systemctl disable --now "$svc" >/dev/null 2>&1 || true
        elif command -v service >/dev/null; then
            as_root service "$svc" stop >/dev/null 2>&1 || true
        fi
    done
}
