"""The deploy files stay consistent: compose file, scripts, Kafka version. No services needed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCRIPTS = [DEPLOY / "services", DEPLOY / "test", ROOT / ".ci" / "run"]
LEDGER_SERVICES = {"consume", "publish", "project", "serve"}
ENV_VARS = ("LEDGER_DATABASE_URL", "LEDGER_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def _pom_kafka_version() -> str:
    match = re.search(
        r"<kafka\.version>([^<]+)</kafka\.version>", (DEPLOY / "kafka" / "pom.xml").read_text()
    )
    assert match, "deploy/kafka/pom.xml names no kafka.version"
    return match.group(1)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the "KEY=value" list form
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def test_compose_has_the_backing_services_and_every_ledger_process(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "kafka"} | LEDGER_SERVICES <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert services["kafka"]["image"].startswith("apache/kafka:")


def test_every_ledger_process_is_built_here_and_gets_both_addresses(
    compose: dict[str, Any],
) -> None:
    for name in LEDGER_SERVICES:
        service = compose["services"][name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert (
            DEPLOY / Path(service["build"]["context"]) / service["build"]["dockerfile"]
        ).is_file()
        command = service["command"]
        assert command[:2] == ["ledger", name], f"{name} runs {command}"
        env = _environment(service)
        for var in ENV_VARS:
            assert env.get(var), f"{name} lacks {var}"
        assert env["LEDGER_DATABASE_URL"].startswith("postgresql://")
        depends = service.get("depends_on", {})
        assert {"postgres", "kafka"} <= set(depends), f"{name} must wait for its services"


def test_published_ports_are_bound_to_loopback_only(compose: dict[str, Any]) -> None:
    published = 0
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            published += 1
            spec = port if isinstance(port, str) else str(port.get("host_ip", "")) + ":"
            assert spec.startswith("127.0.0.1:"), f"{name} publishes {port!r} beyond loopback"
    assert published >= 3


def test_compose_kafka_matches_the_broker_version_of_deploy_services(
    compose: dict[str, Any],
) -> None:
    version = _pom_kafka_version()
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{version}"
    env = _environment(compose["services"]["kafka"])
    assert "HOST://127.0.0.1:19092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"
    assert env["KAFKA_NUM_PARTITIONS"] == "4"


def test_readme_names_the_kafka_version() -> None:
    assert f"Kafka {_pom_kafka_version()}" in (ROOT / "README.md").read_text()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_are_executable_and_parse(script: Path) -> None:
    assert script.is_file()
    assert os.access(script, os.X_OK), f"{script} is not executable"
    bash = shutil.which("bash")
    assert bash
    result = subprocess.run([bash, "-n", str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_ci_runs_exactly_the_readme_test_command() -> None:
    assert "exec bash deploy/test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```", 2)[1]
    assert "deploy/test" in first_block
    assert "ledger demo" in first_block


def test_kafka_server_template_listens_on_loopback_only() -> None:
    text = (DEPLOY / "kafka" / "server.properties.template").read_text()
    props = dict(
        line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#")
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["auto.create.topics.enable"] == "true"
    assert props["num.partitions"] == "4"
