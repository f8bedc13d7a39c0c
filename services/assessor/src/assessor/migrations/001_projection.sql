-- The read model behind GET /v1/patients/{id}/recovery: one row per patient, rewritten
-- whole from the worker's state after each event (idempotent, any replica can serve it).
CREATE TABLE recovery (
    patient_id        text PRIMARY KEY,
    phase             text,
    day               integer,
    stream_time       timestamptz,
    baseline_severity smallint,
    latest_severity   smallint,
    reports           jsonb NOT NULL DEFAULT '[]',
    alerts            jsonb NOT NULL DEFAULT '[]',
    updated_at        timestamptz NOT NULL DEFAULT now()
);
