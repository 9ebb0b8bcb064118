"""Secrets are never printed: a ClickHouse URL's password stays out of settings' repr, validation errors, store
errors and the CLI's output (`stack status`, `status`)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from projections.store import connect
from services.settings import Settings
from services.stack import free_port
from tests.support.worker import run_cli

SECRET = "s3cret-do-not-print"


def test_settings_repr_and_str_hide_passwords_and_tokens_but_keep_the_real_values(tmp_path):
    url = f"http://omnitrail:{SECRET}@ch.example:8123/omnitrail"
    s = Settings(state_dir=tmp_path, clickhouse_url=url, clickhouse_read_url=f"{url}?password={SECRET}",
                 api_token=SECRET)
    for text in (repr(s), str(s)):
        assert SECRET not in text
        assert "clickhouse_url='http://omnitrail:***@ch.example:8123/omnitrail'" in text
    assert s.clickhouse_url == s.store_url == url and s.api_token == SECRET  # what the code reads is untouched
    assert s.model_dump()["clickhouse_url"] == url


def test_a_validation_error_does_not_quote_the_url():
    with pytest.raises(ValidationError) as info:
        Settings(clickhouse_url=[f"http://omnitrail:{SECRET}@ch.example:8123/omnitrail"])
    assert "clickhouse_url" in str(info.value) and SECRET not in str(info.value)


def test_unsupported_url_error_hides_the_password():
    with pytest.raises(ValueError, match="use chdb:///abs/path or http") as info:
        connect(f"postgres://omnitrail:{SECRET}@db.example/omnitrail")
    assert SECRET not in str(info.value) and "postgres://omnitrail:***@db.example/omnitrail" in str(info.value)


def test_an_unreachable_server_error_names_no_password():
    with pytest.raises(Exception) as info:  # whatever clickhouse-connect raises: it must not carry the password
        connect(f"http://omnitrail:{SECRET}@127.0.0.1:{free_port()}/omnitrail")
    assert SECRET not in str(info.value) and SECRET not in repr(info.value)


def test_stack_status_shows_the_store_without_its_password(tmp_path):
    s = Settings(state_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}", api_port=free_port(),
                 clickhouse_url=f"http://omnitrail:{SECRET}@ch.example:8123/omnitrail")
    result = run_cli(s, "stack", "status")
    assert result.returncode == 0, result.stderr
    assert "clickhouse: http://omnitrail:***@ch.example:8123/omnitrail" in result.stdout
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.integration
def test_status_names_an_unreachable_store_without_its_password(settings):
    port = free_port()
    url = f"http://omnitrail:{SECRET}@127.0.0.1:{port}/omnitrail"
    result = run_cli(settings.model_copy(update={"clickhouse_url": url}), "status", "--json")
    assert result.returncode == 1
    assert f"cannot read the projections from http://omnitrail:***@127.0.0.1:{port}/omnitrail: " in result.stderr
    assert SECRET not in result.stdout + result.stderr
