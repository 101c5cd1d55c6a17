"""Configuration read from environment variables, with working local defaults."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any


def _env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_str(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from exc


LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) is this machine only."""
    host = host.strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# A setting's type (as annotated) -> how its environment variable is read.
_ENV_READERS: dict[object, Callable[[str, Any], Any]] = {
    "str": _env_str, "int": _env_int, "bool": _env_bool}


@dataclass(frozen=True)
class Settings:
    database_url: str = "postgresql://postgres@127.0.0.1:5432/device_jobs"
    celery_broker_url: str = "redis://127.0.0.1:6379/0"
    # Prefix for every broker key, so several deployments (or test runs) can share one Redis.
    celery_key_prefix: str = ""
    # RabbitMQ only: declare the task queues as quorum queues (replicated, durable) instead of
    # classic durable queues. See README, "Choosing a broker".
    celery_quorum_queues: bool = False
    # PostgreSQL straight, not through a pooler in transaction mode (PgBouncer), for what needs
    # a session of its own: the idle devices' LISTEN and the migrations' advisory lock. Empty:
    # database_url. With PgBouncer older than 1.21 (no max_prepared_statements) in transaction
    # pooling, db_prepared_statements must be off: a statement prepared on one server
    # connection is unknown to the next.
    direct_database_url: str = ""
    db_prepared_statements: bool = True
    redis_url: str = "redis://127.0.0.1:6379/1"
    mqtt_url: str = ""
    # Per-device MQTT credentials (dispatcher.fleet.broker_identities): the admin client of
    # Mosquitto's dynamic security plugin, mqtt[s]://user:password@host[:port] (empty: devices
    # get no MQTT credentials from enrollment), and the broker URL devices are told to use
    # (empty: MQTT_URL without its user and password).
    mqtt_admin_url: str = ""
    mqtt_device_url: str = ""
    # The agent's Debian package (scripts/build-agent-deb) served at /agent/jobs-agent.deb.
    agent_package: str = ""
    admin_token: str = ""
    # When set, /metrics answers only requests bearing it (Prometheus: authorization.credentials).
    metrics_token: str = ""
    # The OpenAPI document and Swagger UI for anyone (else this host and admin/viewer tokens).
    api_docs_public: bool = False
    auth_disabled: bool = False
    max_body_bytes: int = 1024 * 1024
    max_document_bytes: int = 32 * 1024
    output_cap_bytes: int = 64 * 1024
    list_limit_max: int = 500
    poll_after_s: int = 30
    # How long a status report waits for others to join its batch (one statement, one commit;
    # dispatcher.jobs.report_batches); reports arriving while a batch runs join the next anyway.
    report_batch_window_ms: int = 0
    fanout_chunk_size: int = 10_000
    # The sweeper re-enqueues a fan-out with no enqueue or committed chunk for this long.
    fanout_stalled_after_s: int = 60
    fanout_sweep_interval_s: int = 30
    # Beat period of the execution-policy sweeps (rollout, timeouts, schedules, abort, retry);
    # the full continuous reconcile is slower, device changes reconcile at once.
    policy_sweep_interval_s: int = 5
    continuous_reconcile_interval_s: int = 30
    # The portal's fleet numbers are counted this often; a device seen within
    # device_online_within_s (a few poll intervals) counts as online.
    fleet_count_interval_s: int = 15
    device_online_within_s: int = 300
    # Beat period of the stage gate sweep (gates are also decided after every report), and
    # whether a job created with requires_approval must be approved by another admin.
    stage_gate_sweep_interval_s: int = 5
    approval_by_other_admin: bool = False
    # History kept (0: forever): finished executions and their device rows for
    # retention_days, a recurring job's newest retention_recurring_runs finished runs, audit
    # events for audit_retention_days; the sweep pauses retention_pause_ms between batches.
    retention_days: int = 180
    retention_recurring_runs: int = 100
    audit_retention_days: int = 730
    retention_sweep_interval_s: int = 300
    retention_pause_ms: int = 50
    # How often beat creates the audit trail's partitions of this month and the next ones.
    event_partitions_sweep_interval_s: int = 3600
    # Off: a signed job, or one held for approval, may not be targeted by inventory. keys
    # (what devices report about themselves can steer them into it).
    targeting_inventory_allowed: bool = True
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    # The operator portal (/portal/): its session cookie is signed with secret_key (derived
    # from admin_token, or random per process, when empty; see api.portal.sessions).
    portal_enabled: bool = True
    secret_key: str = ""
    # Origins (comma-separated) whose pages may call /api/v1 with a bearer token.
    cors_allowed_origins: str = ""

    # How long a request waits for a pool connection before answering 503 (an outage, or a
    # pool too small for the load).
    db_pool_timeout_s: int = 10
    # Client-side limits (dispatcher.db_limits): connecting to PostgreSQL, and waiting for any
    # one answer from it. A statement unanswered this long (the network or the server stalled)
    # has its connection closed and answers 503; it must exceed the slowest statement (a
    # sweep's batch, a fan-out chunk). 0: no limit.
    db_connect_timeout_s: int = 5
    db_query_timeout_s: int = 30
    # An Ed25519 private key (``dispatcher signing-key create``): when set, every execution's
    # job document is signed, and agents given the public key run only signed documents.
    signing_key_file: str = ""
    # How long after execute (or after a later start or end) devices accept a signed job.
    signature_valid_s: int = 7 * 24 * 3600
    # Requests a minute (0: no limit). A 100k-device fleet polling every 30 s makes 2 polls a
    # minute per device and, all behind one NAT address, about 200k a minute from it.
    rate_limit_device_per_min: int = 600
    rate_limit_address_per_min: int = 1_000_000
    # 401s a minute from one address, past which it is refused everything until the minute ends.
    rate_limit_auth_failures_per_min: int = 120
    # Reverse proxies (addresses or networks, or "*") whose X-Forwarded-For names the client;
    # gunicorn reads the same variable for the scheme.
    forwarded_allow_ips: str = "127.0.0.1"
    # Artifacts (dispatcher.catalog.artifact_storage): "local" (ARTIFACT_DIR) or "s3".
    artifact_storage: str = "local"
    artifact_dir: str = "artifacts"
    artifact_max_bytes: int = 2 * 1024 ** 3
    artifact_s3_bucket: str = ""
    artifact_s3_endpoint_url: str = ""

    @property
    def session_database_url(self) -> str:
        """The URL of a connection that keeps its session (LISTEN, advisory locks)."""
        return self.direct_database_url or self.database_url

    @classmethod
    def from_env(cls) -> Settings:
        """Each setting from the environment variable named as it is in capitals
        (``db_pool_max_size`` from ``DB_POOL_MAX_SIZE``); unset or empty, its default."""
        return cls(**{setting.name: _ENV_READERS[setting.type](setting.name.upper(),
                                                               setting.default)
                      for setting in fields(cls)})
