"""The Prometheus configuration and alert rules, checked and unit-tested with promtool."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.intake.settings import IntakeSettings
from services.notify.settings import NotifySettings
from services.route.settings import RouteSettings
from services.verify.settings import VerifySettings
from shared.settings import ServiceSettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
RUNBOOK = REPO / "docs" / "runbook.md"
PORTS: dict[str, type[ServiceSettings]] = {
    "intake": IntakeSettings,
    "verify": VerifySettings,
    "route": RouteSettings,
    "notify": NotifySettings,
}


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not installed: run deploy/local/tools.sh "
            "(or `apt-get install prometheus`), which `make test` does",
            pytrace=False,
        )
    return subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def rules() -> list[dict[str, Any]]:
    data = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def github_anchors(markdown: str) -> set[str]:
    """Anchors of the headings, as a Markdown renderer (GitHub, GitLab) makes them."""
    anchors = set()
    for line in markdown.splitlines():
        match = re.match(r"^#{1,6}\s+(.*)$", line)
        if match:
            text = match.group(1).strip().lower()
            text = re.sub(r"[^\w\- ]", "", text)
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_config_and_rules_are_valid() -> None:
    config = promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    checked = promtool("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rules())} rules found" in checked.stdout


def test_alert_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    # Summing the lag of every instance would count one group's lag once per replica.
    broken = (PROMETHEUS / "alerts.yml").read_text(encoding="utf-8")
    assert broken.count("max without (instance)") >= 3
    (tmp_path / "alerts.yml").write_text(broken.replace("max without (instance) ", ""))
    shutil.copy(PROMETHEUS / "alerts.test.yml", tmp_path / "alerts.test.yml")
    result = promtool("test", "rules", "alerts.test.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "ConsumerLagHigh" in result.stdout + result.stderr


def test_every_alert_is_shown_firing_and_not_firing() -> None:
    data = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text(encoding="utf-8"))
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in data["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in rules()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def test_every_alert_links_to_its_runbook_section() -> None:
    anchors = github_anchors(RUNBOOK.read_text(encoding="utf-8"))
    for rule in rules():
        annotations = rule["annotations"]
        assert annotations.get("summary"), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        url = annotations["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbook.md", url
        assert anchor == rule["alert"].lower(), url
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/runbook.md"


def test_scrape_jobs_are_the_four_services_on_their_ports() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text(encoding="utf-8"))
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert jobs == {
        service: [f"127.0.0.1:{settings().http_port}"] for service, settings in PORTS.items()
    }
    assert config["rule_files"] == ["alerts.yml"]
