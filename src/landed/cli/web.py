"""``landed api`` and ``landed token``: the HTTP service and its API tokens."""

from __future__ import annotations

import threading

import click
from rich.table import Table

from landed.cli.base import cli, emit_json, open_ledger, out, setup_logging, stop_on_signals


@cli.command()
@click.option(
    "--listen", default=None, help="HOST:PORT to listen on (default: api_listen, 127.0.0.1:8025)."
)
@click.pass_context
def api(ctx: click.Context, listen: str | None) -> None:
    """Serve the REST API, webhooks, tracking endpoints and dashboard over HTTP.

    OpenAPI documentation is at /docs. Stops on SIGTERM or SIGINT after the
    requests in flight have finished.
    """
    from landed.api.server import ApiServer

    if not ctx.obj.get("log_level"):
        setup_logging("info")
    with open_ledger() as (settings, database):
        server = ApiServer(settings, listen=listen, db=database)
        stop = threading.Event()
        stop_on_signals(stop)
        server.serve_until(stop)


@cli.group("tokens")
def token() -> None:
    """Bearer tokens for the REST API (shown once, stored hashed)."""


@token.command("create")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def token_create(name: str, as_json: bool) -> None:
    """Make an API token called NAME and print it. It is shown this once only."""
    from landed.clock import SystemClock
    from landed.store.apitokens import create_token

    with open_ledger() as (_, database), database.write() as conn:
        made = create_token(conn, name, now=SystemClock().now())
    if as_json:
        emit_json(
            {
                "name": made.name,
                "token": made.token,
                "prefix": made.prefix,
                "created_at": made.created_at.isoformat(),
            }
        )
        return
    click.echo(made.token)
    click.echo(
        f"API token {made.name!r} created. It is shown this once: store it now. "
        "Use it as: Authorization: Bearer <token>",
        err=True,
    )


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.option("--active", is_flag=True, help="Leave out revoked tokens.")
def token_list(as_json: bool, active: bool) -> None:
    """API tokens: name, prefix, when made, last used and revoked (never the token)."""
    from landed.store.apitokens import list_tokens

    with open_ledger() as (_, database), database.read() as conn:
        found = list_tokens(conn, include_revoked=not active)
    if as_json:
        for view in found:
            emit_json(view.as_dict())
        return
    table = Table(box=None, header_style="bold")
    for column in ("name", "prefix", "created", "last used", "revoked"):
        table.add_column(column, overflow="fold")
    for view in found:
        table.add_row(
            view.name,
            view.prefix + "…",
            f"{view.created_at:%Y-%m-%d %H:%M}",
            f"{view.last_used_at:%Y-%m-%d %H:%M}" if view.last_used_at else "never",
            f"{view.revoked_at:%Y-%m-%d %H:%M}" if view.revoked_at else "",
        )
    out.print(table)


@token.command("revoke")
@click.argument("name")
def token_revoke(name: str) -> None:
    """Revoke the API token called NAME: it stops working at once."""
    from landed.clock import SystemClock
    from landed.store.apitokens import revoke_token

    with open_ledger() as (_, database), database.write() as conn:
        revoke_token(conn, name, now=SystemClock().now())
    out.print(f"API token {name!r} revoked")


# DESIGN.md's contract names the group ``tokens``; ``token`` works too, unlisted.
cli.add_command(click.Group("token", commands=token.commands, hidden=True, help=token.help))
