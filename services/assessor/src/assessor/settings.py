from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class AssessorSettings(CommonSettings):
    port: int = Field(default=8081, validation_alias="ASSESSOR_PORT")
    app_id: str = Field(default="assessor", validation_alias="ASSESSOR_APP_ID")
    data_dir: str = Field(default=".run/assessor", validation_alias="ASSESSOR_DATA_DIR")
    # The patient-events agent takes up to ``batch_max`` events, or what arrived within
    # ``batch_within_ms``, and writes the read model once per batch.
    batch_max: int = Field(default=500, ge=1, le=10_000, validation_alias="ASSESSOR_BATCH_MAX")
    batch_within_ms: int = Field(
        default=20, ge=1, le=5_000, validation_alias="ASSESSOR_BATCH_WITHIN_MS"
    )
    # Decoded states of the most recently used patients (0: none), to skip re-parsing.
    state_cache: int = Field(default=20_000, ge=0, validation_alias="ASSESSOR_STATE_CACHE")
