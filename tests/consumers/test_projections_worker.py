"""The demo stories through a real worker into every projection, read back the way analysts read them."""

from __future__ import annotations

import pytest

from services import demo as stories
from services.publisher import Publisher
from services.reader import read, read_timeline
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_stories_become_flags_violations_and_journeys(settings, worker):
    events = sorted(stories.all_events(), key=lambda e: e.time)
    with Publisher(settings) as publisher:
        publisher.publish_many(events)
        publisher.publish_many(events[:8])  # redelivered: must change nothing below

    mail = wait_until(lambda: len(r := read_timeline(settings, stories.RETURNED_MAIL_CUSTOMER)) >= 12 and r)
    assert [r["kind"] for r in mail if r["source"].startswith("/omnitrail/projections")] == [
        "AddressFlagged", "MailToFlaggedAddress", "AddressFlagCleared"]
    [flag] = read(settings, "customer_flags", customer_id=stories.RETURNED_MAIL_CUSTOMER)
    assert (flag["status"], flag["returns"]) == ("cleared", 3)
    assert flag["actions"] == ["flagged", "mail_sent_alert", "cleared: address changed"]
    assert read(settings, "flags") == [] and read(settings, "suppression") == []

    wait_until(lambda: len(read_timeline(settings, stories.HOTEL_CUSTOMER)) >= 10)
    [violation] = read(settings, "consistency")
    assert (violation["customer_id"], violation["subject"]) == (stories.HOTEL_CUSTOMER, "HOTEL-AMS-DBL-3N")
    assert sorted(zip(violation["channels"], violation["values"])) == [("phone", "389.00 EUR"), ("web", "429.00 EUR")]

    [hotel] = read(settings, "journeys", customer_id=stories.HOTEL_CUSTOMER)
    assert hotel["channels"] == ["phone", "web", "email", "partner"] and hotel["channel_switches"] == 3
    [billing] = wait_until(lambda: read(settings, "journeys", customer_id=stories.TRANSFERRED_CUSTOMER))
    assert billing["transfers"] == 3 and billing["resolved"] and not billing["first_contact_resolution"]
    phone = [m for m in read(settings, "metrics", channel="phone") if m["ces"] is not None]
    assert phone and phone[0]["ces"] == 6.0
