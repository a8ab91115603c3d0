"""docker/compose.yaml stays valid and names only services, commands and ports that exist in the code."""

from __future__ import annotations

from pathlib import Path

import yaml

from router.cli import get_app

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "compose.yaml"


def _commands() -> set[str]:
    app = get_app()
    return {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands} | {
        g.name for g in app.registered_groups
    }


def test_compose_has_redis_demo_metrics_and_prometheus():
    data = yaml.safe_load(COMPOSE.read_text())
    assert {"redis", "demo", "metrics", "prometheus"} <= set(data["services"])


def test_compose_services_run_real_cli_commands():
    data = yaml.safe_load(COMPOSE.read_text())
    known = _commands()
    for name in ("demo", "metrics"):
        command = data["services"][name]["command"]
        assert command[0] in known, f"compose service {name} runs unknown command {command[0]!r}"
        assert "--store" in command and command[command.index("--store") + 1].startswith("redis://redis:6379")
        for i, arg in enumerate(command):
            if arg == "--policy":
                policy = command[i + 1].removeprefix("/app/")
                assert (REPO / policy).is_file(), policy


def test_prometheus_scrapes_the_metrics_service_port():
    data = yaml.safe_load(COMPOSE.read_text())
    metrics_cmd = data["services"]["metrics"]["command"]
    port = metrics_cmd[metrics_cmd.index("--port") + 1]
    assert f"{port}:{port}" in data["services"]["metrics"]["ports"]
    prom = yaml.safe_load((REPO / "docker" / "prometheus.yml").read_text())
    targets = [t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    assert f"metrics:{port}" in targets


def test_dockerfile_copies_what_the_services_need():
    text = (REPO / "docker" / "Dockerfile").read_text()
    for needed in ("requirements.lock", "--require-hashes", "price_catalog", "policies", "ENTRYPOINT [\"router\"]"):
        assert needed in text


def test_run_local_script_starts_the_same_services():
    text = (REPO / "docker" / "run-local.sh").read_text()
    assert "redis-server" in text and "router metrics" in text and "router demo" in text
