"""``landed user``: dashboard logins (the ``operator`` table)."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from landed.cli.base import cli, emit_json, open_ledger, out

#: The CLI asks for at least this much; the store only refuses an empty password.
MIN_PASSWORD = 8


@cli.group()
def user() -> None:
    """Dashboard logins: add, list, disable."""


@user.command("add")
@click.argument("name")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
@click.option(
    "--replace", is_flag=True, help="Set a new password if the login exists (and re-enable it)."
)
def user_add(name: str, password_stdin: bool, replace: bool) -> None:
    """Create a dashboard login NAME (the password is asked for, never an argument)."""
    from landed.clock import SystemClock
    from landed.errors import InputError
    from landed.store.operators import add_operator, check_username

    check_username(name)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise InputError(f"the password must have at least {MIN_PASSWORD} characters")
    with open_ledger() as (_, db):
        add_operator(db, name, password, now=SystemClock().now(), replace=replace)
    out.print(f"login {name} {'updated' if replace else 'created'}")


@user.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def user_list(as_json: bool) -> None:
    """Every dashboard login."""
    from landed.store.operators import list_operators

    with open_ledger() as (_, db):
        found = list_operators(db)
    if as_json:
        for operator in found:
            emit_json(operator.as_dict())
        return
    table = Table(box=None, header_style="bold")
    for column in ("user", "created (UTC)", "state"):
        table.add_column(column)
    for operator in found:
        state = (
            f"disabled {operator.disabled_at:%Y-%m-%d %H:%M}" if operator.disabled_at else "active"
        )
        table.add_row(operator.username, f"{operator.created_at:%Y-%m-%d %H:%M}", state)
    out.print(table)


@user.command("disable")
@click.argument("name")
def user_disable(name: str) -> None:
    """Disable login NAME; its open sessions stop working at once."""
    from landed.clock import SystemClock
    from landed.store.operators import disable_operator

    with open_ledger() as (_, db):
        changed = disable_operator(db, name, now=SystemClock().now())
    out.print(f"login {name} {'disabled' if changed else 'was already disabled'}")
