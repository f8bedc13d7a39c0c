-- Patients' data keys (shared.crypto), each wrapped by the master key (MASTER_KEY). The
-- only copy: deleting a row erases every copy of that patient's data in Kafka at once.
CREATE TABLE patient_keys (
    patient_id text PRIMARY KEY,
    wrapped    bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per erased patient: what each store reported (counts, never contents). Kept
-- after the patient's data is gone: it is the proof the erasure happened (no patient data).
CREATE TABLE erasures (
    patient_id   text PRIMARY KEY,
    erasure_id   uuid NOT NULL UNIQUE,
    reason       text NOT NULL CHECK (reason IN ('request', 'retention')),
    requested_at timestamptz NOT NULL,
    completed_at timestamptz,
    stores       jsonb NOT NULL DEFAULT '{}'::jsonb
);

-- When a patient's monitoring completed (from recovery-events.v1), for retention.
CREATE TABLE completions (
    patient_id   text PRIMARY KEY,
    completed_at timestamptz NOT NULL
);
CREATE INDEX completions_by_time ON completions (completed_at);
