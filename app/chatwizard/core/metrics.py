"""Every Prometheus metric the app exposes, in one module.

The rules in monitoring/ and the dashboards reference these names; a test fails when one of them
names a metric that is not defined here or in an exporter. Under gunicorn the client runs in
multiprocess mode (PROMETHEUS_MULTIPROC_DIR), so gauges declare how worker values combine: state
gauges use the live modes, so a dead worker's last word (say "database down") dies with it, and
figures one worker computes for all use the most recent value.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Buckets include 3 s and 5 s so the seed's latency thresholds are exact bucket boundaries.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

# --- RED per route -------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "chatwizard_http_requests_total", "HTTP requests by route template, method and status",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "chatwizard_http_request_duration_seconds", "HTTP request latency by route template",
    ["route", "method"], buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "chatwizard_http_requests_in_flight", "Requests being served", multiprocess_mode="livesum"
)

# --- chat and LLM --------------------------------------------------------------------------
CHAT_TTFT = Histogram(
    "chatwizard_chat_time_to_first_token_seconds", "Time from request to first answer token",
    ["mode"], buckets=LATENCY_BUCKETS,
)
CHAT_DURATION = Histogram(
    "chatwizard_chat_duration_seconds", "Time to a complete chat answer",
    ["mode", "cache"], buckets=LATENCY_BUCKETS,
)
CACHE_REQUESTS = Counter(
    "chatwizard_cache_requests_total", "Cache lookups by cache and result",
    ["cache", "result"],  # cache: exact|semantic|search; result: hit|miss|error
)
LLM_REQUESTS = Counter(
    "chatwizard_llm_requests_total", "LLM provider calls by operation and outcome",
    ["provider", "operation", "outcome"],  # operation: chat|embedding; outcome: ok|error|rejected
)
LLM_ERRORS = Counter(
    "chatwizard_llm_errors_total", "LLM provider errors by kind",
    ["provider", "operation", "kind"],  # kind: timeout|rate_limited|server|connection|circuit_open
)
LLM_LATENCY = Histogram(
    "chatwizard_llm_request_duration_seconds", "LLM provider call latency",
    ["provider", "operation"], buckets=LATENCY_BUCKETS,
)
LLM_TOKENS = Counter(
    "chatwizard_llm_tokens_total", "Tokens sent to and received from the LLM",
    ["model", "direction"],  # direction: input|output
)
LLM_COST = Counter("chatwizard_llm_cost_usd_total", "LLM spend in USD from the price table", ["model"])
LLM_CIRCUIT_OPEN = Gauge(
    "chatwizard_llm_circuit_open", "1 while the LLM circuit breaker is open",
    ["provider"], multiprocess_mode="livemax",
)

# --- database ------------------------------------------------------------------------------
DB_POOL_SIZE = Gauge(
    "chatwizard_db_pool_connections", "Open pool connections", ["node"], multiprocess_mode="livesum"
)
DB_POOL_IN_USE = Gauge(
    "chatwizard_db_pool_in_use", "Pool connections checked out", ["node"], multiprocess_mode="livesum"
)
DB_POOL_WAITING = Gauge(
    "chatwizard_db_pool_waiting", "Callers waiting for a pool connection",
    ["node"], multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "chatwizard_db_pool_max_connections", "Configured pool maximum", ["node"], multiprocess_mode="livesum"
)
DB_ACQUIRE = Histogram(
    "chatwizard_db_pool_acquire_seconds", "Time to acquire a pool connection",
    ["node"], buckets=FAST_BUCKETS,
)
# Pool efficiency = acquisitions served without waiting / all acquisitions (docs/observability.md).
DB_ACQUISITIONS = Counter(
    "chatwizard_db_pool_acquisitions_total", "Pool acquisitions by whether the caller had to wait",
    ["node", "waited"],  # waited: "no" when served within 1 ms
)
NEAR_CACHE = Counter(
    "chatwizard_near_cache_requests_total", "In-process near-cache lookups (key records, answers)",
    ["result"],  # hit|miss
)
DB_BATCH_SIZE = Histogram(
    "chatwizard_db_write_batch_size", "Items per group-committed write statement",
    ["writer"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
DB_QUERY_ERRORS = Counter(
    "chatwizard_db_query_errors_total", "Database errors by node and kind", ["node", "kind"]
)
DB_CONNECTION_FAILURES = Counter(
    "chatwizard_db_connection_failures_total", "Failed attempts to connect or acquire", ["node"]
)
DB_REPLICA_LAG = Gauge(
    "chatwizard_db_replica_lag_seconds", "Replica replay lag as measured by the app",
    multiprocess_mode="livemax",
)
DB_READS = Counter(
    "chatwizard_db_reads_total", "Read queries by the node that served them", ["node"]
)
DB_UP = Gauge(
    "chatwizard_db_up", "1 when the node answered the last health check", ["node"],
    multiprocess_mode="livemin",
)

# --- Redis ---------------------------------------------------------------------------------
REDIS_BATCH_SIZE = Histogram(
    "chatwizard_redis_batch_size", "Commands per pipelined Redis round trip (concurrent rate-limit checks)",
    ["batcher"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
REDIS_ERRORS = Counter("chatwizard_redis_errors_total", "Redis command failures", ["operation"])
REDIS_FALLBACK = Gauge(
    "chatwizard_redis_fallback_active", "1 while the app runs without Redis", multiprocess_mode="livemax"
)

# --- business ------------------------------------------------------------------------------
CHATS = Counter("chatwizard_chats_total", "Chat questions answered", ["channel"])  # json|sse|ws
CHATS_NOT_SAVED = Counter(
    "chatwizard_chats_not_saved_total", "Chats answered but not stored in history (the primary was down)"
)
VIDEO_CLICKS = Counter("chatwizard_video_clicks_total", "Recommended-video clicks")
VIDEO_COMPLETIONS = Counter("chatwizard_video_completions_total", "Videos watched to completion")
WATCH_SECONDS = Counter("chatwizard_watch_seconds_total", "Watch progress reported, in seconds")
PATH_PROGRESS = Histogram(
    "chatwizard_learning_path_progress_ratio", "Path completion ratio observed on each progress event",
    buckets=(0.1, 0.25, 0.5, 0.75, 0.9, 1.0),
)
SESSIONS_SCHEDULED = Counter("chatwizard_calendar_sessions_scheduled_total", "Learning sessions scheduled")
ACTIVE_USERS = Gauge(
    "chatwizard_active_users", "Distinct users seen in the window", ["window"],  # 1d
    multiprocess_mode="mostrecent",  # set by whichever worker swept last
)
SESSION_DURATION = Histogram(
    "chatwizard_user_session_duration_seconds", "Length of a user's activity session (30 min idle ends it)",
    buckets=(30, 60, 300, 600, 1800, 3600, 7200),
)
COST_PER_USER = Gauge(
    "chatwizard_llm_cost_per_active_user_usd", "LLM spend today divided by daily active users",
    multiprocess_mode="mostrecent",
)

# --- security ------------------------------------------------------------------------------
AUTH_FAILURES = Counter("chatwizard_auth_failures_total", "Rejected credentials", ["reason"])
AUTHZ_DENIALS = Counter("chatwizard_authz_denials_total", "Authorisation denials", ["route"])
RATE_LIMITED = Counter("chatwizard_rate_limited_total", "Requests refused with 429", ["scope"])
AUDIT_EVENTS = Counter(
    "chatwizard_audit_events_total",
    "Security events for the audit trail: row stored, repeat folded into one, or write failed",
    ["action", "result"],
)

# --- build ---------------------------------------------------------------------------------
BUILD_INFO = Gauge(
    "chatwizard_build_info", "Version of the running app", ["version"], multiprocess_mode="livemax"
)


# --- series that must exist before their first event ---------------------------------------
# increase() and rate() see a counter change only between two samples: a series whose first sample
# is already 1 (the first failure since start) is invisible to them, so alerts would miss it.
ERROR_STATUSES = ("500", "503")


def init_series(routes: list[tuple[str, str]]) -> None:
    """Create at 0 every labelled series an alert or SLI counts failures on (each worker, at start)."""
    for node in ("primary", "replica"):
        DB_CONNECTION_FAILURES.labels(node)
    for template, method in routes:
        for status in ERROR_STATUSES:
            HTTP_REQUESTS.labels(template, method, status)
    for cache, result in (("exact", "hit"), ("exact", "miss"), ("semantic", "hit")):
        CACHE_REQUESTS.labels(cache, result)
