"""Stateful projections keep their state across a worker restart, not recounted: a warm restart reads its local
store and none of the changelog; a worker without its local store (a new machine) restores it from the changelog."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta

import pytest

from schemas import events as ev
from schemas.envelope import Event
from services.publisher import Publisher
from services.reader import read
from tests.support.events import ADDRESS, T0
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration


def returned(n: int) -> Event:
    return Event.of(ev.MailReturned(letter_id=f"L{n}", address=ADDRESS, reason="moved"), customer="r-1",
                    channel="mail", source="/test/mail", id=f"ret-{n}", time=T0 + timedelta(days=n))


def flag_rows(settings) -> list[dict]:
    return read(settings, "customer_flags", customer_id="r-1")


def restored(log) -> int:
    return sum(int(n) for n in re.findall(r"\((\d+) state records restored\)", log.read_text()))


@pytest.mark.parametrize("local_store", ["warm", "lost"])
def test_a_restarted_worker_neither_loses_nor_double_counts_returns(settings, tmp_path, local_store):
    first = WorkerProcess(settings, tmp_path / "worker-1.log").start()
    with Publisher(settings) as publisher:
        publisher.publish(returned(1))
        wait_until(lambda: [r["returns"] for r in flag_rows(settings)] == [1])
        first.stop()
        if local_store == "lost":
            shutil.rmtree(settings.state_dir / "states")

        second = WorkerProcess(settings, tmp_path / "worker-2.log").start()
        try:
            publisher.publish(returned(1))  # redelivered after the restart: must not count again
            publisher.publish(returned(2))
            [row] = wait_until(lambda: (rows := flag_rows(settings)) and rows[0]["status"] == "flagged" and rows)
        finally:
            second.stop()
    assert row["returns"] == 2  # one from before the restart, recovered, plus one after
    assert restored(tmp_path / "worker-2.log") == (0 if local_store == "warm" else 1)
    assert [f["customer_id"] for f in read(settings, "flags")] == ["r-1"]
