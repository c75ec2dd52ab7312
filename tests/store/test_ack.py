from __future__ import annotations

from landed.client import Client
from landed.clock import FixedClock
from landed.config import Settings
from landed.store import Database
from landed.store.ack import acknowledge


def test_acknowledging_n_confirms_what_n_listed(settings: Settings, clock: FixedClock) -> None:
    db = Database(settings.database_url)
    client = Client(settings, clock=clock, database=db)
    ids = [
        client.notify(
            topic=f"INC-{i}", cls="incident", to=["bob@corp.test"], subject=f"n{i}", text="t"
        )[0]
        for i in range(1, 5)
    ]
    client.notify(topic="OTHER", cls="incident", to=["alice@corp.test"], subject="x", text="t")
    with db.write() as conn:
        confirmed = acknowledge(conn, ids[2], now=clock.now())  # #3 listed #1 and #2
    assert sorted(confirmed) == sorted(ids[:3])
    levels = {v.delivery_id: v.level for v in client.status(recipient="bob@corp.test")}
    assert [levels[i] for i in ids] == ["acknowledged", "acknowledged", "acknowledged", "queued"]
    (first,) = client.status(ids[0])
    assert "confirmed cumulatively by #3" in (first.evidence[-1].detail or "")
    with db.write() as conn:
        acknowledge(conn, ids[2], now=clock.now())
    (again,) = client.status(ids[0])
    assert len(again.evidence) == 1, "acknowledging twice records once"
    with db.write() as conn:
        assert acknowledge(conn, ids[3], now=clock.now(), cumulative=False) == [ids[3]]
    db.dispose()
