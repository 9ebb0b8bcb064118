"""`omnitrail status` warns about log topics whose retention would drop events (checked on a real broker: noida-db
answers DescribeConfigs with every setting and applies IncrementalAlterConfigs, like Apache Kafka)."""

from __future__ import annotations

import uuid

import orjson
import pytest
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from consumers.kafka import admin
from consumers.topics import drops_events
from services.topics import ensure_topics
from tests.support.worker import run_cli


@pytest.mark.parametrize(("config", "dropping"), [
    ({"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}, {}),
    ({"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"},
     {"retention.ms": "604800000"}),
    ({"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "1073741824"},
     {"retention.bytes": "1073741824"}),
    ({"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"}, {"cleanup.policy": "compact"}),
    ({"cleanup.policy": "compact,delete", "retention.ms": "0", "retention.bytes": "-1"},
     {"cleanup.policy": "compact,delete", "retention.ms": "0"}),
    # A broker that leaves a setting out (Tansu reports only what a topic was created with): Kafka's default.
    ({}, {"retention.ms": "604800000"}),
    ({"retention.ms": "-1"}, {}),
])
def test_settings_that_drop_events(config, dropping):
    assert drops_events(config) == dropping


def status(settings, *args):
    result = run_cli(settings, "status", *args)
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.integration
def test_status_names_topics_that_drop_events_and_the_fix(settings):
    assert orjson.loads(status(settings, "--json").stdout)["retention_problems"] == []  # as omnitrail creates them

    s = settings.model_copy(update={"topic_prefix": f"r{uuid.uuid4().hex[:8]}"})
    weekly, compacted = s.channel_topic("mail"), s.derived_topic
    client = admin(s.kafka_bootstrap)  # kept: a collected client cancels its pending requests
    created = client.create_topics([  # made by hand, before omnitrail made the others
        NewTopic(weekly, s.partitions, 1, config={"retention.ms": "604800000"}),
        NewTopic(compacted, s.partitions, 1, config={"cleanup.policy": "compact", "retention.ms": "-1"})])
    for future in created.values():
        future.result()
    ensure_topics(s)

    problems = orjson.loads(status(s, "--json").stdout)["retention_problems"]
    assert {p["topic"]: p["settings"] for p in problems} == {
        weekly: {"retention.ms": "604800000"}, compacted: {"cleanup.policy": "compact"}}
    fixes = {p["topic"]: p["fix"] for p in problems}
    assert fixes[weekly] == (f"kafka-configs.sh --bootstrap-server {s.kafka_bootstrap} --alter --entity-type topics "
                             f"--entity-name {weekly} --add-config retention.ms=-1,retention.bytes=-1")
    assert fixes[compacted].endswith("--add-config cleanup.policy=delete,retention.ms=-1,retention.bytes=-1")

    text = status(s)
    assert f"warning: topic {weekly} would delete events (retention.ms=604800000)" in text.stderr
    assert fixes[weekly] in text.stderr and fixes[compacted] in text.stderr

    # What the fix sets, applied as kafka-configs.sh would: the warnings go away.
    alter = [ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(*kv.split("="), incremental_operation=AlterConfigOpType.SET)
        for kv in fix.rpartition("--add-config ")[2].split(",")]) for topic, fix in fixes.items()]
    for future in client.incremental_alter_configs(alter).values():
        future.result()
    assert orjson.loads(status(s, "--json").stdout)["retention_problems"] == []
    assert "warning" not in status(s).stderr
