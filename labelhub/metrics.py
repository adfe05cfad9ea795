"""Prometheus metrics, one registry per application.

The README lists every metric. Gauges that describe the database (tasks by
status, reconciliation lag) are refreshed when `/metrics` is scraped, from the
small `task_counts` and `sync_state` tables, so they cost nothing otherwise.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_FAST_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_SLOW_BUCKETS_S = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self) -> None:
        # Children per label set, looked up once: `labels()` costs more than
        # the increment itself, and these two are on every request's path.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._webhook_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "labelhub_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "labelhub_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=_FAST_BUCKETS_S,
            registry=r,
        )
        self.webhooks = Counter(
            "labelhub_webhook_deliveries",
            "Label Studio webhook deliveries, by action and outcome",
            ["action", "outcome"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "labelhub_webhook_handling_seconds",
            "Time from receiving a webhook to answering it (commit included)",
            ["action"],
            buckets=_FAST_BUCKETS_S,
            registry=r,
        )
        self.webhook_batch = Histogram(
            "labelhub_webhook_batch_size",
            "Deliveries committed together in one transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=r,
        )
        self.jobs = Counter(
            "labelhub_jobs",
            "Background jobs finished, by kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.job_seconds = Histogram(
            "labelhub_job_duration_seconds",
            "Time a job ran, by kind",
            ["kind"],
            buckets=_SLOW_BUCKETS_S,
            registry=r,
        )
        self.reconciliations = Counter(
            "labelhub_reconciliations",
            "Reconciliation runs, by mode (full, incremental) and outcome",
            ["mode", "outcome"],
            registry=r,
        )
        self.drift = Counter(
            "labelhub_drift_repaired",
            "Differences from Label Studio repaired by reconciliation, by kind",
            ["kind"],
            registry=r,
        )
        self.reconcile_lag = Gauge(
            "labelhub_reconciliation_lag_seconds",
            "Seconds since the last successful reconciliation of a project",
            ["project"],
            registry=r,
        )
        self.studio_calls = Counter(
            "labelhub_studio_calls",
            "Calls to the Label Studio API, by endpoint and outcome",
            ["endpoint", "outcome"],
            registry=r,
        )
        self.studio_seconds = Histogram(
            "labelhub_studio_call_duration_seconds",
            "Time of a Label Studio API call, by endpoint",
            ["endpoint"],
            buckets=(*_FAST_BUCKETS_S, 5, 10, 30),
            registry=r,
        )
        self.tasks = Gauge(
            "labelhub_tasks",
            "Tasks in the shadow index, by dataset and status",
            ["dataset", "status"],
            registry=r,
        )

    def observe_request(
        self, method: str, route: str, status: int, duration_s: float
    ) -> None:
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.request_seconds.labels(method, route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(duration_s)

    def observe_webhook(self, action: str, outcome: str, duration_s: float) -> None:
        key = (action, outcome)
        children = self._webhook_children.get(key)
        if children is None:
            children = (
                self.webhooks.labels(action, outcome),
                self.webhook_seconds.labels(action),
            )
            self._webhook_children[key] = children
        children[0].inc()
        children[1].observe(duration_s)
