"""docker-compose.yml and what it mounts: no secret in the repository, tokens on the network, least-privilege
ClickHouse users, one stable identity per worker.

No Docker engine runs here, so these read the files; they cannot show that the stack starts.
"""

from __future__ import annotations

import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docker-compose.yml").read_text()
SERVICES = yaml.safe_load(TEXT)["services"]
USERS = ET.parse(ROOT / "deploy" / "clickhouse" / "users.d" / "omnitrail.xml").getroot()

VARIABLE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")
SECRET_NAME = re.compile(r"(PASSWORD|TOKEN|SECRET|KEY)$", re.IGNORECASE)  # a value that is a secret
URL_PASSWORD = re.compile(r"://[^:/@]+:(?P<password>[^@]*)@")


def required(value: str) -> bool:
    """A value that is one required variable: Compose stops with a message naming it while it is unset."""
    match = VARIABLE.fullmatch(value)
    return bool(match and match["op"] == ":?" and f"set {match['name']} in .env" in match["arg"])


def env(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[service].get("environment", {}).items()}


def test_no_secret_is_written_in_the_file():
    for service in SERVICES:
        for name, value in env(service).items():
            if SECRET_NAME.search(name):
                assert required(value), f"{service}: {name} must be ${{{name}:?...}}, not a value"
            for match in URL_PASSWORD.finditer(value):
                assert required(match["password"]), f"{service}: {name} has a password in its URL"


def test_every_secret_variable_is_required_with_a_message():
    secrets = [m[0] for m in VARIABLE.finditer(TEXT) if SECRET_NAME.search(m["name"])]
    assert secrets and all(required(s) for s in secrets), secrets


def test_every_variable_is_documented_in_env_example():
    lines = (ROOT / ".env.example").read_text().splitlines()
    documented = {line.partition("=")[0] for line in lines if "=" in line and not line.startswith("#")}
    assert {m["name"] for m in VARIABLE.finditer(TEXT)} == documented


def test_only_the_api_listens_on_the_network_and_it_requires_tokens():
    api = env("api")
    assert SERVICES["api"]["command"] == ["omnitrail", "serve"]
    assert api["OMNITRAIL_API_HOST"] == "0.0.0.0" and api["OMNITRAIL_API_REQUIRE_TOKENS"] == "true"
    for service in set(SERVICES) - {"api"}:
        assert env(service).get("OMNITRAIL_API_HOST", "127.0.0.1") != "0.0.0.0", service
    ports = [p for s in SERVICES.values() for p in s.get("ports", [])]
    assert ports and all(p.startswith("127.0.0.1:") for p in ports)  # published to the host's loopback only


def test_each_worker_has_its_own_instance_id_and_state_volume():
    workers = [s for s in SERVICES if SERVICES[s].get("command") == ["omnitrail", "worker"]]
    ids = [env(w).get("OMNITRAIL_WORKER_INSTANCE_ID") for w in workers]
    volumes = [SERVICES[w]["volumes"][0] for w in workers]
    assert len(workers) >= 2 and all(ids) and len(set(ids)) == len(ids)
    assert len(set(volumes)) == len(volumes) and all(v.endswith(":/var/lib/omnitrail") for v in volumes)
    assert not any("deploy" in SERVICES[w] or "scale" in SERVICES[w] for w in workers)


def test_the_cli_shares_the_api_credentials_file():
    path = env("api")["OMNITRAIL_CREDENTIALS_FILE"]
    for service in ("api", "cli"):
        assert env(service)["OMNITRAIL_CREDENTIALS_FILE"] == path
        assert f"credentials:{Path(path).parent}" in SERVICES[service]["volumes"]


def test_clickhouse_users_are_least_privilege_with_passwords_from_the_environment():
    clickhouse = env("clickhouse")
    users = {u.tag: u for u in USERS.find("users")}
    grants = {name: [q.text for q in u.find("grants")] for name, u in users.items()}
    assert grants == {"omnitrail_writer": ["GRANT SELECT, INSERT, ALTER, CREATE TABLE, DROP TABLE ON omnitrail.*"],
                      "omnitrail_reader": ["GRANT SELECT ON omnitrail.*"]}
    for user in users.values():
        password = user.find("password")
        assert not (password.text or "").strip() and required(clickhouse[password.get("from_env")])
    profile = USERS.find(f"profiles/{users['omnitrail_reader'].findtext('profile')}")
    assert profile.findtext("readonly") == "1"
    assert clickhouse[profile.find("max_execution_time").get("from_env")] == \
        env("api")["OMNITRAIL_API_QUERY_SECONDS"]  # the limit the reads ask for is the profile's
    assert env("api")["OMNITRAIL_CLICKHOUSE_URL"].startswith("http://omnitrail_writer:")
    assert env("api")["OMNITRAIL_CLICKHOUSE_READ_URL"].startswith("http://omnitrail_reader:")


def test_env_stays_out_of_git_and_out_of_the_image():
    ignored = subprocess.run(["git", "check-ignore", "--no-index", ".env", ".env.example"], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert ignored == [".env"]
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()
