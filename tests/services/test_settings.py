"""Settings: defaults, OMNITRAIL_ environment overrides, frozen, derived store URL and topic names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas.channels import Channel
from services.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No OMNITRAIL_ variable from the caller's shell leaks in; relative paths resolve under tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("OMNITRAIL_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults(tmp_path):
    s = Settings()
    assert s.state_dir == (tmp_path / ".omnitrail").resolve()
    assert s.state_dir.is_absolute()
    assert s.kafka_bootstrap == "127.0.0.1:29092"
    assert s.topic_prefix == "omnitrail"
    assert s.partitions == 12 and s.replication_factor == 1  # enough for twelve workers
    assert s.event_mode == "binary"
    assert s.source == "/omnitrail/cli"
    assert s.consumer_group == "omnitrail-projections"
    assert s.api_url == "http://127.0.0.1:8765"


def test_the_worker_config_carries_the_settings_it_runs_on(tmp_path):
    s = Settings(topic_prefix="p", consumer_group="g", partitions=6, batch_size=10, checkpoint_seconds=3,
                 flag_threshold=4)
    c = s.worker_config()
    assert (c.topics.channel("mail"), c.topics.derived, c.topics.repartition, c.topics.changelog) == (
        "p.mail", "p.derived", "p.repartition", "g-state-changelog")
    assert (c.partitions, c.batch_size, c.checkpoint_seconds, c.rules.flag_threshold) == (6, 10, 3, 4)
    assert c.instance_id == s.group_instance_id and c.store_url == s.store_url


def test_store_url_defaults_to_embedded_clickhouse_under_state_dir(tmp_path):
    s = Settings(state_dir=tmp_path / "state")
    assert s.store_url == f"chdb://{(tmp_path / 'state').resolve() / 'clickhouse'}"
    assert s.embedded_store


def test_default_store_url_follows_default_state_dir(tmp_path):
    assert Settings().store_url == f"chdb://{(tmp_path / '.omnitrail').resolve()}/clickhouse"


def test_store_url_from_clickhouse_url():
    s = Settings(clickhouse_url="http://default:@ch.example:8123/omnitrail")
    assert s.store_url == "http://default:@ch.example:8123/omnitrail"
    assert not s.embedded_store


def test_store_url_is_serialised():
    assert Settings().model_dump()["store_url"] == Settings().store_url


def test_relative_state_dir_is_made_absolute(tmp_path):
    assert Settings(state_dir=Path("a/b")).state_dir == (tmp_path / "a" / "b").resolve()


def test_environment_overrides(monkeypatch, tmp_path):
    env = {
        "OMNITRAIL_STATE_DIR": str(tmp_path / "st"),
        "OMNITRAIL_KAFKA_BOOTSTRAP": "kafka-1:9092,kafka-2:9092",
        "OMNITRAIL_TOPIC_PREFIX": "acme.prod",
        "OMNITRAIL_PARTITIONS": "12",
        "OMNITRAIL_REPLICATION_FACTOR": "3",
        "OMNITRAIL_EVENT_MODE": "structured",
        "OMNITRAIL_SOURCE": "/channels/phone/genesys",
        "OMNITRAIL_CONSUMER_GROUP": "g1",
        "OMNITRAIL_BATCH_SIZE": "50",
        "OMNITRAIL_BATCH_SECONDS": "1.5",
        "OMNITRAIL_API_HOST": "127.0.0.2",
        "OMNITRAIL_API_PORT": "9000",
        "OMNITRAIL_SESSION_TIMEOUT_MS": "30000",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert s.state_dir == (tmp_path / "st").resolve()
    assert s.store_url == f"chdb://{(tmp_path / 'st').resolve()}/clickhouse"
    assert s.kafka_bootstrap == "kafka-1:9092,kafka-2:9092"
    assert s.topic_prefix == "acme.prod"
    assert (s.partitions, s.replication_factor) == (12, 3)
    assert s.event_mode == "structured"
    assert s.source == "/channels/phone/genesys"
    assert s.consumer_group == "g1"
    assert (s.batch_size, s.batch_seconds) == (50, 1.5)
    assert s.api_url == "http://127.0.0.2:9000"
    assert s.session_timeout_ms == 30_000
    assert s.channel_topic("mail") == "acme.prod.mail"


def test_environment_clickhouse_url(monkeypatch):
    monkeypatch.setenv("OMNITRAIL_CLICKHOUSE_URL", "chdb:///srv/ch")
    assert Settings().store_url == "chdb:///srv/ch"


def test_environment_names_are_case_insensitive(monkeypatch):
    monkeypatch.setenv("omnitrail_partitions", "5")
    assert Settings().partitions == 5


def test_variables_without_the_prefix_are_ignored(monkeypatch):
    monkeypatch.setenv("PARTITIONS", "9")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "elsewhere:1")
    s = Settings()
    assert s.partitions == 12 and s.kafka_bootstrap == "127.0.0.1:29092"


def test_explicit_arguments_beat_the_environment(monkeypatch):
    monkeypatch.setenv("OMNITRAIL_PARTITIONS", "12")
    assert Settings(partitions=4).partitions == 4


def test_state_dir_expands_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OMNITRAIL_STATE_DIR", "~/omni")
    assert Settings().state_dir == (tmp_path / "home" / "omni").resolve()


@pytest.mark.parametrize(("name", "value"), [
    ("OMNITRAIL_PARTITIONS", "0"), ("OMNITRAIL_PARTITIONS", "many"), ("OMNITRAIL_REPLICATION_FACTOR", "0"),
    ("OMNITRAIL_EVENT_MODE", "json"), ("OMNITRAIL_TOPIC_PREFIX", "bad/prefix"), ("OMNITRAIL_TOPIC_PREFIX", ""),
    ("OMNITRAIL_BATCH_SIZE", "0"), ("OMNITRAIL_BATCH_SECONDS", "0"), ("OMNITRAIL_API_PORT", "70000"),
    ("OMNITRAIL_SESSION_TIMEOUT_MS", "5999"),
])
def test_bad_environment_values_are_rejected(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert info.value.errors()[0]["loc"] == (name.removeprefix("OMNITRAIL_").lower(),)


def test_unknown_omnitrail_variables_are_ignored(monkeypatch):
    monkeypatch.setenv("OMNITRAIL_TEST_DOCKER", "1")
    Settings()


@pytest.mark.parametrize(("field", "value"), [("partitions", 4), ("topic_prefix", "x"), ("state_dir", Path("/"))])
def test_settings_are_frozen(field, value):
    s = Settings()
    with pytest.raises(ValidationError, match="frozen"):
        setattr(s, field, value)
    assert getattr(s, field) != value


def test_settings_are_hashable_and_comparable():
    assert Settings(partitions=4) == Settings(partitions=4)
    assert hash(Settings(partitions=4)) == hash(Settings(partitions=4))
    assert Settings(partitions=4) != Settings(partitions=5)


def test_model_copy_gives_a_changed_copy():
    s = Settings()
    t = s.model_copy(update={"topic_prefix": "other"})
    assert s.topic_prefix == "omnitrail" and t.topic_prefix == "other"


# --- topic names ----------------------------------------------------------------------------------------------------
def test_channel_topics():
    s = Settings(topic_prefix="acme")
    assert s.channel_topic(Channel.PHONE) == "acme.phone"
    assert s.channel_topic("whatsapp") == "acme.whatsapp"
    assert s.channel_topics == [f"acme.{c.value}" for c in Channel]
    assert len(set(s.channel_topics)) == len(Channel)
    assert s.deadletter_topic == "acme.deadletter"
    assert s.deadletter_topic not in s.channel_topics


def test_unknown_channel_has_no_topic():
    with pytest.raises(ValueError):
        Settings().channel_topic("fax")


def test_topic_names_are_valid_kafka_names():
    s = Settings(topic_prefix="a.b-c_D9")
    for topic in (*s.channel_topics, s.deadletter_topic):
        assert len(topic) <= 249
        assert all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in topic), topic
