"""The category names the cause the evidence supports, and only replaces a symptom."""

from __future__ import annotations

import pytest
from aiops_analyzer.engines.categories import cause_category
from aiops_analyzer.engines.findings import Finding, log_topic


def finding(topic: str, confidence: float = 0.7, *, explains: bool = True) -> Finding:
    return Finding(f"a {topic} cause", confidence, ("prom-1",), topic=topic, explains=explains)


@pytest.mark.parametrize(
    ("family", "topic", "expected"),
    [
        ("target_down", "reboot", "reboot"),
        ("target_down", "firewall", "firewall"),
        ("target_down", "listen", "misconfiguration"),
        ("error_rate", "dns", "dns"),
        ("target_down", "certificate", "certificate_expiry"),
        ("cpu_saturation", "gc", "garbage_collection"),
        ("container_crash", "shutdown", "container_stopped"),
        ("unknown", "clock", "clock_skew"),
    ],
)
def test_a_symptom_gives_way_to_the_cause_the_evidence_names(
    family: str, topic: str, expected: str
) -> None:
    assert cause_category(family, [finding(topic)]) == expected


def test_a_family_that_already_names_a_cause_keeps_it() -> None:
    assert cause_category("oom_killed", [finding("shutdown")]) == "oom_killed"
    assert cause_category("certificate_expiry", [finding("tls")]) == "certificate_expiry"
    assert cause_category("failed_job", [finding("dns")]) == "failed_job"


def test_a_broken_path_names_the_category_of_a_stream_that_lags() -> None:
    """Replication or consumers lag because the network between them broke (an MTU change,
    a full conntrack table, a name that no longer resolves)."""
    assert cause_category("queue_lag", [finding("mtu")]) == "network"
    assert cause_category("queue_lag", [finding("dns")]) == "dns"
    assert cause_category("queue_lag", [finding("reboot")]) == "queue_lag"


def test_garbage_collection_behind_a_memory_alert_is_the_symptom_of_a_full_heap() -> None:
    assert cause_category("memory_pressure", [finding("gc")]) == "memory_pressure"
    assert cause_category("latency", [finding("gc")]) == "garbage_collection"


def test_a_cause_of_unavailability_names_no_cause_for_a_busy_cpu() -> None:
    for topic in ("shutdown", "firewall", "dns", "reboot", "listen"):
        assert cause_category("cpu_saturation", [finding(topic)]) == "cpu_saturation", topic
    assert cause_category("host_load", [finding("conntrack")]) == "host_load"


def test_weak_context_and_unmapped_findings_leave_the_symptom() -> None:
    assert cause_category("target_down", [finding("reboot", 0.5)]) == "target_down"
    assert cause_category("target_down", [finding("reboot", explains=False)]) == "target_down"
    assert cause_category("error_rate", [finding("")]) == "error_rate"
    # A version that started before the alert is a lead; new errors right after a release
    # (0.8) are its failure.
    assert cause_category("target_down", [finding("deploy", 0.75)]) == "target_down"
    assert cause_category("target_down", [finding("deploy", 0.8)]) == "deploy_regression"
    assert cause_category("target_down", []) == "target_down"


def test_the_best_supported_cause_wins() -> None:
    found = [finding("link", 0.7), finding("firewall", 0.75), finding("dns", 0.6)]
    assert cause_category("target_down", found) == "firewall"


def test_a_tls_line_about_a_certificate_s_dates_is_its_expiry() -> None:
    expired = "x509: certificate has expired or is not yet valid: current time is after notAfter"
    assert log_topic("tls", expired) == "certificate"
    assert log_topic("tls", "certbot: Failed to renew certificate shop.example.com") == (
        "certificate"
    )
    assert log_topic("tls", "x509: certificate signed by unknown authority") == "tls"
    assert log_topic("dns", "lookup db: no such host, renew lease") == "dns"
    assert cause_category("error_rate", [finding(log_topic("tls", expired))]) == (
        "certificate_expiry"
    )


def test_no_space_left_names_the_full_disk_behind_errors_and_failed_jobs() -> None:
    """An API's 5xx or a job's failed run whose lines say "No space left on device" is filed
    under the full disk; a CPU alert is not explained by it."""
    full = finding("disk", 0.7)
    assert cause_category("error_rate", [full]) == "disk_space"
    assert cause_category("failed_job", [full]) == "disk_space"
    assert cause_category("target_down", [full]) == "disk_space"
    assert cause_category("cpu_saturation", [full]) == "cpu_saturation"
    assert cause_category("error_rate", [finding("disk", 0.5)]) == "error_rate"  # a lead only
