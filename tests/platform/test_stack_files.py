"""The stack files in platform/ are what a team deploys: Prometheus must accept its config
and alert rules, the alerts must fire on the situations they describe (promtool's rule
unit tests), and every series the alerts and the Grafana dashboard query must be one the
platform really exposes, so a renamed metric cannot leave a silent panel or alert."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from telemetry.metrics import families, internal

PLATFORM = Path(__file__).resolve().parents[2] / "platform"
SERIES_SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created")
PROMQL_WORDS = {
    "sum", "by", "rate", "increase", "histogram_quantile", "max", "min", "and", "or", "le", "without",
    "count", "avg", "on", "ignoring", "group_left", "offset",
}


def _promtool(*arguments):
    completed = subprocess.run(["promtool", *arguments], cwd=PLATFORM, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return completed.stdout


def _alert_expressions():
    rules = yaml.safe_load((PLATFORM / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _dashboard_expressions():
    expressions = []
    for path in (PLATFORM / "grafana" / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        expressions += [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    return expressions


def _exposed_families():
    families()
    internal.define_all()
    return {metric.name for metric in REGISTRY.collect()}


def _series_names(expression):
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    without_label_sets = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_label_sets)
    without_ranges = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", without_ranges)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", without_ranges))
    return {name for name in names if name not in PROMQL_WORDS and not name.replace("_", "").isdigit()
            and "_" in name and not re.fullmatch(r"\d+[smhd]", name)}


def test_prometheus_accepts_config_and_rules():
    output = _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in output


def test_alerts_fire_on_the_situations_they_describe():
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yml")


def test_dashboard_expressions_are_valid_promql(tmp_path):
    expressions = _dashboard_expressions()
    assert len(expressions) >= 10
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{index}", "expr": expression} for index, expression in enumerate(expressions)
    ]}]}
    rules_file = tmp_path / "dashboard_rules.yml"
    rules_file.write_text(yaml.safe_dump(rules))
    assert f"SUCCESS: {len(expressions)} rules found" in _promtool("check", "rules", str(rules_file))


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_every_queried_series_is_exposed(source):
    expressions = _alert_expressions() if source == "alerts" else _dashboard_expressions()
    exposed = _exposed_families()
    missing = set()
    for expression in expressions:
        for name in _series_names(expression):
            family = name
            for suffix in SERIES_SUFFIXES:
                if name.endswith(suffix) and name[: -len(suffix)] in exposed:
                    family = name[: -len(suffix)]
            if family not in exposed:
                missing.add(name)
    assert not missing, f"{source} query series the platform does not expose: {sorted(missing)}"


def test_collector_pipelines_use_declared_components():
    config = yaml.safe_load((PLATFORM / "otel-collector.yaml").read_text())
    for name, pipeline in config["service"]["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"pipeline {name} uses undeclared {kind[:-1]} {component}"
    assert set(config["service"]["pipelines"]) == {"traces", "metrics", "logs"}


def test_platform_is_not_a_python_package():
    assert not (PLATFORM / "__init__.py").exists()
