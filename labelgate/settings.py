"""Settings, read lazily from the environment (prefix ``LABELGATE_``) or a ``.env`` file.

``get_settings()`` is the only entry point; nothing reads the environment at import time.
Secrets have no defaults: a feature that needs one fails with a clear error when it is missing.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LABELGATE_", env_file=".env", extra="ignore")

    store: str = Field(
        default_factory=lambda: str(Path.cwd() / "labelgate-store"),
        description="Root of the label store: a local folder or an object-store URI "
        "(s3://, gs://, az://). Each label set is a Delta table below it.",
    )
    runs_dir: Path = Field(
        default_factory=lambda: Path.cwd() / "runs",
        description="Where each run writes its report (markdown + PNG).",
    )
    storage_options: dict[str, str] = Field(
        default_factory=dict,
        description="Extra options for the object store (credentials, region), passed to deltalake.",
    )
    labelstudio_url: str = Field(
        default="http://127.0.0.1:8080",
        validation_alias=AliasChoices("labelstudio_url", "LABELGATE_LABELSTUDIO_URL", "LABEL_STUDIO_URL"),
        description="Base URL of the Label Studio server (LABELGATE_LABELSTUDIO_URL or LABEL_STUDIO_URL).",
    )
    labelstudio_api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "labelstudio_api_key", "LABELGATE_LABELSTUDIO_API_KEY", "LABEL_STUDIO_API_KEY"
        ),
        description="Label Studio API token of an admin (LABELGATE_LABELSTUDIO_API_KEY or "
        "LABEL_STUDIO_API_KEY). No default: review in Label Studio fails without it.",
    )
    labelstudio_timeout: float = Field(
        default=30,
        gt=0,
        validation_alias=AliasChoices("labelstudio_timeout", "LABELGATE_LABELSTUDIO_TIMEOUT"),
        description="Seconds Label Studio has to answer each request (LABELGATE_LABELSTUDIO_TIMEOUT); "
        "raise it for a slow server.",
    )
    labelstudio_retries: int = Field(
        default=4,
        ge=0,
        le=20,
        validation_alias=AliasChoices("labelstudio_retries", "LABELGATE_LABELSTUDIO_RETRIES"),
        description="Retries of a Label Studio request that found the server down, timed out or got "
        "429/5xx, waiting 0.5 s, then twice as long each time (LABELGATE_LABELSTUDIO_RETRIES).",
    )
    # -- webhook receiver (labelgate.api) -------------------------------------------------
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="Shared secret Label Studio sends in the X-Labelgate-Secret header of its "
        "webhook calls (LABELGATE_WEBHOOK_SECRET). No default: the receiver refuses every call "
        "and no webhook is registered without it.",
    )
    api_url: str | None = Field(
        default=None,
        description="Base URL at which Label Studio reaches the labelgate API, e.g. "
        "http://127.0.0.1:8000 (LABELGATE_API_URL); webhooks go to <api_url>/webhooks/labelstudio. "
        "Unset: no webhook is registered and the review-sync schedule alone resumes jobs.",
    )

    # -- jobs API (labelgate.api) ----------------------------------------------------------
    api_tokens: SecretStr | None = Field(
        default=None,
        description='Bearer tokens of the HTTP API and their scopes, as JSON: {"<token>": ["read", '
        '"submit"]} (LABELGATE_API_TOKENS). "read" reads jobs and label sets; "submit" submits and '
        "cancels jobs. No default: without it every route but /health answers 401.",
    )
    data_roots: list[str] = Field(
        default_factory=lambda: [str(Path.cwd() / "data")],
        description="Folders (or URI prefixes such as s3://bucket/labeling/) that jobs submitted "
        'over the API may read, as JSON: ["/srv/data", "s3://bucket/in/"] (LABELGATE_DATA_ROOTS). '
        "A relative path in a submitted spec is taken below the first root; anything outside "
        "every root is refused with 400.",
    )
    deployment: str = Field(
        default="labeling-job/labeling-job",
        description="The Prefect deployment ('flow/deployment') that runs jobs submitted over the API.",
    )
    work_queue: str | None = Field(
        default=None,
        description="Work queue of the deployment's pool that API-submitted runs go to "
        "(LABELGATE_WORK_QUEUE); unset: the deployment's own queue.",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings, read once on first use."""
    return Settings()
