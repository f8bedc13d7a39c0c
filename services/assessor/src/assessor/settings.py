from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class AssessorSettings(CommonSettings):
    port: int = Field(default=8081, validation_alias="ASSESSOR_PORT")
    app_id: str = Field(default="assessor", validation_alias="ASSESSOR_APP_ID")
    data_dir: str = Field(default=".run/assessor", validation_alias="ASSESSOR_DATA_DIR")
