"""`omnitrail whois` and identifiers in place of customer ids, through the command line on real engines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas import events as ev
from schemas.envelope import Event
from tests.support.wait import wait_until
from tests.support.worker import run_cli

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def jsonl(*events: Event) -> str:
    return "".join(e.model_dump_json() + "\n" for e in events)


def emit(settings, tmp_path, *events: Event) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(jsonl(*events))
    result = run_cli(settings, "emit", "--file", str(path))
    assert result.returncode == 0, result.stderr


def cli_json(settings, *args: str):
    result = run_cli(settings, *args, "--json")
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def event(n: int, subject: str, payload: ev.Payload, channel: str = "twitter") -> Event:
    return Event.of(payload, customer=subject, channel=channel, source="/test/webcare", id=f"w-{n}",
                    time=T0 + timedelta(hours=n))


def test_whois_follows_links_and_unlinks_and_identifiers_read_as_their_customer(settings, worker, tmp_path):
    tweet = event(0, "twitter:@jan", ev.MessageReceived(conversation_id="t-1", text="Where is my letter?"))
    linked = event(1, "cust-7", ev.IdentityLinked(kind="twitter", value="@Jan"))
    emit(settings, tmp_path, tweet, linked)

    rows = wait_until(lambda: (rows := cli_json(settings, "timeline", "cust-7")) and len(rows) == 2 and rows)
    assert [(r["event_id"], r["customer_id"]) for r in rows] == [(tweet.id, "twitter:@jan"), (linked.id, "cust-7")]
    assert cli_json(settings, "timeline", "Twitter:@JAN") == rows  # any spelling of the identifier
    assert [j["customer_id"] for j in cli_json(settings, "journeys", "twitter:jan")] == ["twitter:@jan", "cust-7"]

    [who] = cli_json(settings, "whois", "Twitter:@JAN")
    assert (who["identifier"], who["customer_id"]) == ("twitter:@jan", "cust-7")
    assert [(h["action"], h["customer_id"], h["event_id"]) for h in who["history"]] == [("link", "cust-7", linked.id)]
    table = run_cli(settings, "whois", "twitter:@jan")
    assert table.returncode == 0 and "twitter:@jan belongs to cust-7" in table.stdout and "Links (1)" in table.stdout

    unlinked = event(2, "cust-7", ev.IdentityUnlinked(kind="twitter", value="jan"))
    emit(settings, tmp_path, unlinked)
    wait_until(lambda: cli_json(settings, "whois", "twitter:@jan")[0]["customer_id"] is None)
    assert [r["event_id"] for r in cli_json(settings, "timeline", "cust-7")] == [linked.id, unlinked.id]
    assert [r["event_id"] for r in cli_json(settings, "timeline", "twitter:@jan")] == [tweet.id]
    assert "belongs to nobody now (unlinked)" in run_cli(settings, "whois", "twitter:@jan").stdout


def test_whois_of_an_unknown_identifier_and_of_text_that_is_none(settings):
    assert cli_json(settings, "whois", "email:nobody@example.com") == []
    assert "email:nobody@example.com was never linked to a customer" in run_cli(
        settings, "whois", "email:nobody@example.com").stdout
    bad = run_cli(settings, "whois", "cust-7")
    assert bad.returncode == 1 and "not an identifier (kind:value): 'cust-7'" in bad.stderr
