"""One settings object, read from ``DMS_*`` environment variables.

With nothing set, everything is embedded: a local object store under ``./var/objects``,
a SQLite catalog at ``./var/catalog.db`` and in-process task execution. Call
:func:`get_settings` (cached); tests swap settings by clearing the cache after changing
the environment, or pass a :class:`Settings` explicitly.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.instruments import MAX_EXPOSURE_BYTES

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DMS_", extra="ignore", frozen=True)

    var_dir: Path = Field(Path("var"), description="Working directory of the embedded default.")
    catalog_url: str | None = Field(
        None, description="SQLAlchemy URL of the catalog; default sqlite:///<var_dir>/catalog.db."
    )
    store: Literal["local", "s3"] = Field("local", description="Object-store backend.")
    store_root: Path | None = Field(None, description="Local store root; default <var_dir>/objects.")
    s3_endpoint: str = Field("127.0.0.1:9000", description="host:port of the S3 service.")
    s3_access_key: str = "minioadmin"
    s3_secret_key: str = "minioadmin"
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    s3_public_endpoint: str | None = Field(
        None, description="host:port that presigned download URLs are signed for (clients' view)."
    )
    s3_part_size: int = Field(16 * 1024 * 1024, description="Multipart part size in bytes.")
    broker_url: str | None = Field(
        None, description="Celery broker (e.g. redis://127.0.0.1:6379/0); None runs tasks in-process."
    )
    result_backend: str | None = None
    broker_visibility_timeout: int = Field(
        3600, description="Seconds before an unacknowledged message (worker died) is redelivered."
    )
    broker_key_prefix: str = Field(
        "", description="Prefix of every broker key, so several deployments can share one Redis."
    )
    broker_restore_interval: int = Field(
        10, description="Seconds between sweeps that return such messages to their queue."
    )
    segment_bytes: int = Field(
        2_000_000_000, description="An _uncal larger than this is split into -segNNN files."
    )
    ingest_max_inflated_bytes: int = Field(
        MAX_EXPOSURE_BYTES,
        description="Hard cap on what one telemetry file's compressed payloads may expand to (default: the "
        "largest exposure a plan may have); beyond it the file is refused.",
    )
    ingest_time_tolerance_s: float = Field(
        86400.0, ge=0.0, description="How far packet times may lie outside the plan's visit window, seconds."
    )
    task_max_retries: int = Field(
        5, description="Retries for transient faults before dead-letter (an object-store outage is waited out uncounted).",
    )
    task_retry_backoff_max: int = Field(600, description="Upper bound of the retry delay, seconds.")
    reconcile_after_seconds: float = Field(
        30.0, description="An outbox event undispatched this long is re-dispatched by the reconciler."
    )
    work_lease_seconds: float = Field(
        120.0, description="Lease of a running task; its worker extends it every third of this while it runs.",
    )
    work_start_timeout_seconds: float = Field(
        600.0, description="A task sent this long ago and not started is sent again (then twice as long, ...).",
    )
    work_retention_seconds: float = Field(
        7 * 86400.0, gt=0, description="Intermediates in dms-work of a split run that failed or was abandoned are "
        "kept this long after its last phase began (for a failed part to be sent again), then swept.",
    )
    work_max_attempts: int = Field(
        5, description="Claims of a task whose lease expired (worker died or hung) before it is failed.",
    )
    worker_malloc_arenas: int = Field(
        2, ge=0, description="C-library (glibc) memory arenas of a worker process; 0 keeps the library's "
        "default (8 per CPU). Each thread of a task (archiving ahead, uploads) otherwise gets an arena "
        "of its own whose freed memory stays with it.",
    )
    tap_timeout_seconds: float = Field(
        10.0, gt=0, description="A TAP (ADQL) query running longer than this is cancelled and answered with an error.",
    )
    tap_max_rec: int = Field(
        10000, ge=1, description="Rows a TAP query returns at most (its MAXREC default and hard limit).",
    )
    smtp_host: str = Field("127.0.0.1", description="SMTP server for e-mail notifications.")
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    mail_from: str = Field("jwst-dms@localhost", description="From address of notifications.")
    webhook_timeout: float = Field(10.0, description="Seconds before a webhook POST gives up.")
    webhook_allow: str = Field(
        "", description="Comma-separated CIDRs and host names a webhook may reach although they are "
                        "private, loopback, link-local or otherwise not public (default: none).",
    )
    subscription_limit: int = Field(20, ge=1, description="Active subscriptions one owner may have.")
    confirm_days: int = Field(7, ge=1, description="Days an e-mail subscription's confirmation link is valid.")
    notify_max_attempts: int = Field(6, description="Delivery attempts before a notification is dead.")
    notify_retry_base: float = Field(30.0, description="First retry delay of a failed delivery, seconds (doubles).")
    archive_host: str = Field("127.0.0.1", description="Address the archive API listens on.")
    archive_port: int = 8000
    archive_base_url: str | None = Field(
        None, description="Public address of the archive API (e.g. https://archive.example.org/api). When "
                          "set, every URL the API returns starts with it; when not, each URL follows the "
                          "address the request reached. Links in notifications (sent outside any request) "
                          "use it, or http://<archive_host>:<archive_port> when unset.",
    )
    archive_behind_proxy: bool = Field(
        False, description="The archive API is reached through a reverse proxy: URLs it returns follow the "
                           "X-Forwarded-Proto and X-Forwarded-Host headers (only when archive_base_url is unset).",
    )
    bundle_max_bytes: int = Field(
        5_120_000_000, ge=1, description="Largest total of the files of one zip or tar bundle, bytes (MAST's "
                                         "basket cap, 5.12 GB); a curl script has no cap.",
    )
    export_max_rows: int = Field(
        100_000, ge=1, description="Most rows an export of every page of a search (page=all: CSV, ECSV or "
                                   "VOTable) may hold; a search matching more is refused (400).",
    )
    token_ttl_days: int = Field(60, description="Lifetime of an API token.")
    operators: str = Field(
        "", description="Comma-separated token owners who are archive operators: they may submit, follow and "
                        "cancel reprocessing requests of any program and read revisions not (yet) published.",
    )
    astrometric_catalog_dir: Path | None = Field(
        None, description="Directory of ECSV star catalogs (ra, dec) that stage 3 aligns mosaics to absolutely.",
    )
    stage3_split_members: int = Field(
        0, ge=0, description="An image3 association of at least this many members is split across the stage-3 "
        "workers, a task per member and phase (docs/stage3.md); 0 never splits. Worth it when stage-3 workers "
        "have cores to spare (several hosts); on one small host the split's extra work only costs.",
    )
    discover_associations: bool = Field(
        False, description="Also build discovered (a3NNN) Level-3 candidates.",
    )
    cal_ver: str = Field("0.1.0", description="Software version written as CAL_VER.")
    source: str = Field("/dms/jwst-dms", description="CloudEvents source of events this system emits.")
    reprocess_policy: str = Field(
        "*=notify",
        description="What a new reference context does to the archived exposures it would calibrate "
        "differently, per reference type and instrument: REFTYPE[:INSTRUMENT]=off|notify|reprocess, "
        "comma-separated, * for any type (e.g. FLAT:NIRCAM=reprocess,*=notify); see docs/refdata.md.",
    )

    @field_validator("archive_base_url")
    @classmethod
    def _check_base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(f"{value!r} is no http(s) URL of the archive API (e.g. https://archive.example.org/api)")
        return value.strip().rstrip("/")

    @field_validator("reprocess_policy")
    @classmethod
    def _check_policy(cls, value: str) -> str:
        # Imported here: shared.refdata imports the runtime, which imports this module.
        from shared.refdata.policy import ReprocessPolicy

        ReprocessPolicy.parse(value)
        return value

    @property
    def policy(self):
        """The parsed :attr:`reprocess_policy` (a :class:`shared.refdata.policy.ReprocessPolicy`)."""
        from shared.refdata.policy import ReprocessPolicy

        return ReprocessPolicy.parse(self.reprocess_policy)

    @property
    def resolved_catalog_url(self) -> str:
        if self.catalog_url:
            return self.catalog_url
        return f"sqlite:///{(self.var_dir / 'catalog.db').resolve()}"

    @property
    def resolved_store_root(self) -> Path:
        return (self.store_root or self.var_dir / "objects").resolve()

    @property
    def operator_users(self) -> frozenset[str]:
        """The identities named by ``DMS_OPERATORS``."""
        return frozenset(u.strip() for u in self.operators.split(",") if u.strip())

    @property
    def archive_link_base(self) -> str:
        """Where links made outside a request (notifications, confirmation links) send users:
        :attr:`archive_base_url`, or the address the API listens on when that is unset (the
        machine's name for a wildcard address)."""
        if self.archive_base_url:
            return self.archive_base_url.rstrip("/")
        host = self.archive_host
        if host in ("0.0.0.0", "::", ""):
            import socket

            host = socket.getfqdn()
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.archive_port}"

    @property
    def embedded(self) -> bool:
        return self.broker_url is None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
