"""Stateful projections keep their state across a worker restart: recovered from the changelog, not recounted."""

from __future__ import annotations

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


def test_a_restarted_worker_neither_loses_nor_double_counts_returns(settings, tmp_path):
    first = WorkerProcess(settings, tmp_path / "worker-1.log").start()
    with Publisher(settings) as publisher:
        publisher.publish(returned(1))
        wait_until(lambda: [r["returns"] for r in flag_rows(settings)] == [1])
        first.stop()

        second = WorkerProcess(settings, tmp_path / "worker-2.log").start()
        try:
            publisher.publish(returned(1))  # redelivered after the restart: must not count again
            publisher.publish(returned(2))
            [row] = wait_until(lambda: (rows := flag_rows(settings)) and rows[0]["status"] == "flagged" and rows)
        finally:
            second.stop()
    assert row["returns"] == 2  # one from before the restart, recovered from the changelog, plus one after
    assert [f["customer_id"] for f in read(settings, "flags")] == ["r-1"]
