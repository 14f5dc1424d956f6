"""One settings object, read from the environment (prefix ``CHATWIZARD_``).

Every field here is documented in the README's configuration table; a test keeps the two in step.
OpenAI's own variables (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) keep their standard names so any
OpenAI-compatible server can be pointed at without learning ours.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from chatwizard.core.crypto import parse_ring

# Ports are facts other parts of the estate (gunicorn, k8s, Prometheus config) import from here.
APP_PORT = 8000
METRICS_PORT = 9000
# The app's own database login (migration 0005; `chatwizard migrate` creates it); the estates import it.
APP_DB_LOGIN = "chatwizard_api"
# The shortest audit retention; migration 0006's audit_purge refuses anything shorter on its own.
AUDIT_MIN_RETENTION_DAYS = 30


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHATWIZARD_", extra="ignore")

    environment: Literal["development", "test", "staging", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = APP_PORT
    metrics_port: int = METRICS_PORT
    workers: int = Field(2, ge=1, le=64, description="gunicorn worker processes")
    max_requests: int = Field(0, ge=0, description="gunicorn worker recycling; 0 = off (a safety net only)")
    log_level: str = "INFO"
    # Proxies whose X-Forwarded-For/-Proto the server believes; from anyone else the headers are ignored,
    # so the audit trail and per-address limits see the real peer. None by default (the local estate).
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        [], description="comma-separated addresses or CIDRs of trusted reverse proxies")

    # Postgres: writes go to the primary, reads to the replica when it is healthy.
    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/chatwizard")
    replica_url: SecretStr | None = None
    # The app's own login, in the chatwizard_app role (migration 0005): with a password set, `chatwizard
    # migrate` (run as the owner) creates it or sets its password; the app's URLs then name it.
    app_db_login: str = Field(APP_DB_LOGIN, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    app_db_password: SecretStr | None = None
    db_pool_min: int = Field(2, ge=0)
    db_pool_max: int = Field(10, ge=1)
    db_statement_cache_size: int = Field(
        256, ge=0, description="asyncpg prepared-statement cache; 0 behind PgBouncer transaction mode"
    )
    db_command_timeout_s: float = 10.0
    db_connect_timeout_s: float = Field(
        1.0, gt=0, description="connecting, and the health probe; a node slower than this is marked down",
    )
    db_write_wait_ms: float = Field(
        3.0, ge=0, le=50,
        description="under load, the longest a batched write waits for as many as the last batch held",
    )
    replica_max_lag_s: float = Field(5.0, description="reads fall back to the primary beyond this lag")
    replica_check_interval_s: float = Field(0.5, gt=0, description="how often each node is probed")

    # Redis: cache and (with the security issue) rate limits. Down means degraded, not broken.
    redis_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    redis_timeout_s: float = 0.5
    redis_pool_max: int = Field(100, ge=1, description="connections per process; a burst beyond it waits")
    redis_retry_interval_s: float = Field(5.0, description="how long to skip Redis after a failure")

    # Rate limits (moving windows, `limits` notation). Per user by tier, over all their keys and channels;
    # per client address for the public feed and for failed authentication.
    rate_limit_free: str = "100/hour"
    rate_limit_pro: str = "10000/hour"
    rate_limit_admin: str = "10000/hour"
    rate_limit_service: str = "100000/hour"
    rate_limit_anonymous: str = "120/minute"
    rate_limit_auth_failures: str = "20/minute"

    key_rotation_overlap_s: int = Field(24 * 3600, ge=0, description="old key's life after a rotation")
    # Active (unrevoked, unexpired) API keys a user of each tier may hold; a rotation may go one over.
    max_keys_free: int = Field(5, ge=1)
    max_keys_pro: int = Field(20, ge=1)
    max_keys_admin: int = Field(20, ge=1)
    max_keys_service: int = Field(50, ge=1)
    # Retention (`chatwizard retention`, a daily CronJob): what is older goes; docs/privacy.md.
    retention_chat_days: int = Field(365, ge=1, description="keep questions and answers this long")
    retention_audit_days: int = Field(400, ge=AUDIT_MIN_RETENTION_DAYS,
                                      description="keep audit trail rows this long")

    cors_origins: list[str] = Field([], description="browser origins allowed to call the API")

    # Browser sign-in (web_sessions/): links in mail point here, and a cookie's WebSocket must come from it.
    public_url: str = Field("http://127.0.0.1:8000", pattern=r"^https?://[^/]+$",
                            description="the address learners open (scheme://host[:port], no path)")
    invitation_ttl_s: int = Field(7 * 24 * 3600, ge=60, description="how long an invitation link works")
    sign_in_link_ttl_s: int = Field(15 * 60, ge=60, le=3600, description="how long a sign-in link works")
    session_lifetime_s: int = Field(7 * 24 * 3600, ge=60, description="a browser session's absolute lifetime")
    session_idle_s: int = Field(24 * 3600, ge=1, description="a browser session ends after this long unused")
    rate_limit_sign_in_mail: str = Field("5/hour", description="sign-in mails per e-mail address")
    # Mail (core/mail.py): the local estate runs an SMTP sink on this port (estate/mail.py).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(8025, ge=1, le=65535)
    smtp_sender: str = Field("Chat Wizard <no-reply@chatwizard.localhost>", description="the From header")
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(False, description="upgrade the SMTP connection with STARTTLS (production)")
    smtp_ca_file: str | None = Field(None, description="CA bundle for the SMTP server (unset: the system's)")
    smtp_timeout_s: float = Field(10.0, gt=0)

    # Caches.
    cache_answer_ttl_s: int = 24 * 3600
    cache_search_ttl_s: int = 3600
    # Chosen on a labelled paraphrase set: >= 97 % of hits right (docs/performance/cache-quality.md).
    semantic_cache_threshold: float = Field(0.80, ge=0.0, le=1.0)
    semantic_cache_max_entries: int = Field(5000, ge=0)
    # An answer joins the semantic index only once this many learners asked its exact words, so a
    # paraphrase never receives one learner's own text (docs/security/threat-model.md, shared cache).
    semantic_cache_min_askers: int = Field(3, ge=1, description="learners asking before an answer is shared")
    near_cache_ttl_s: float = Field(10.0, ge=0, description="how long a process keeps a hot entry in memory")
    near_cache_entries: int = Field(4096, ge=0, description="entries per process in the near cache")
    catalogue_version_ttl_s: float = Field(5.0, description="how long a process trusts its catalogue version")
    hnsw_ef_search: int = Field(100, ge=1, le=1000, description="pgvector HNSW candidate list size")

    # LLM and embeddings.
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("OPENAI_API_KEY", "CHATWIZARD_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        None, validation_alias=AliasChoices("OPENAI_BASE_URL", "CHATWIZARD_OPENAI_BASE_URL")
    )
    chat_model: str = "gpt-4o-mini"
    embedding_model: str = "text-embedding-3-small"
    embedding_dimensions: int = 384
    prompt_version: str = "v1"
    llm_timeout_s: float = 20.0
    llm_max_retries: int = Field(2, ge=0, le=5)
    llm_max_tokens: int = Field(160, ge=16, le=4096, description="~100 words, the prompt's limit")
    breaker_failure_threshold: int = 5
    breaker_reset_s: float = 30.0
    # USD per 1M tokens, input/output, per model: the cost metric and budget alert read this.
    llm_prices_per_mtok: dict[str, tuple[float, float]] = {
        "gpt-4o-mini": (0.15, 0.60),
        "text-embedding-3-small": (0.02, 0.0),
        "local": (0.0, 0.0),
    }

    # Chat.
    recommendations: int = Field(4, ge=3, le=5)
    max_body_bytes: int = Field(64 * 1024, ge=1024)

    # Catalogue seeding on first start of the local estate.
    sample_catalogue: bool = True

    # Field encryption of chat text and e-mail (core/crypto.py): "<version>:<base64 key>,...", first encrypts.
    field_keys: SecretStr | None = None

    # Observability.
    sentry_dsn: SecretStr | None = None
    metrics_multiproc_dir: str | None = None
    memory_limit_bytes: int = Field(2 * 1024**3, description="memory budget when no cgroup limit applies")

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _proxies(cls, value: str | list[str]) -> list[str]:
        items = [i.strip() for i in value.split(",")] if isinstance(value, str) else value
        for item in filter(None, items):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"CHATWIZARD_FORWARDED_ALLOW_IPS: {item!r} is not an IP address or CIDR "
                                 "(list the proxies; '*' is not accepted)") from None
        return [i for i in items if i]

    @field_validator("field_keys")
    @classmethod
    def _key_ring(cls, ring: SecretStr | None) -> SecretStr | None:
        if ring is not None:
            parse_ring(ring.get_secret_value())  # a malformed ring fails at start, not on first chat
        return ring

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("CHATWIZARD_DB_POOL_MIN must not exceed CHATWIZARD_DB_POOL_MAX")
        return self

    @model_validator(mode="after")
    def _tls_outside_development(self) -> Settings:
        """Staging and production use verified TLS to Postgres, Redis and the mail relay, serve learners
        over https, and encrypt personal text."""
        if self.environment not in ("staging", "production"):
            return self
        for name, url in (("CHATWIZARD_DATABASE_URL", self.database_url),
                          ("CHATWIZARD_REPLICA_URL", self.replica_url)):
            if url is not None and "sslmode=verify-full" not in url.get_secret_value():
                raise ValueError(f"{name} must use sslmode=verify-full in {self.environment}")
        if not self.redis_url.get_secret_value().startswith("rediss://"):
            raise ValueError(f"CHATWIZARD_REDIS_URL must be a rediss:// (TLS) URL in {self.environment}")
        if self.field_keys is None:
            raise ValueError(f"CHATWIZARD_FIELD_KEYS is required in {self.environment} (docs/security/)")
        # A sign-in link in a mail is a credential, and the session cookie is Secure: both need TLS.
        if not self.public_url.startswith("https://"):
            raise ValueError(f"CHATWIZARD_PUBLIC_URL must be an https:// address in {self.environment}")
        if not self.smtp_starttls:
            raise ValueError(f"CHATWIZARD_SMTP_STARTTLS must be true in {self.environment}")
        return self

    def max_active_keys(self, tier: str) -> int:
        return {"free": self.max_keys_free, "pro": self.max_keys_pro, "admin": self.max_keys_admin,
                "service": self.max_keys_service}[tier]

    @property
    def llm_mode(self) -> Literal["openai", "local"]:
        return "openai" if self.openai_api_key else "local"


@lru_cache
def get_settings() -> Settings:
    return Settings()
