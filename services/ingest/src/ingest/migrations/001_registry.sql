-- The patient registry ingest needs: who exists, and which phone belongs to whom.
CREATE TABLE patients (
    patient_id        text PRIMARY KEY,
    phone             text NOT NULL UNIQUE,
    timezone          text NOT NULL,
    language          text NOT NULL,
    surgery_date      date NOT NULL,
    baseline_severity smallint NOT NULL,
    care_team         jsonb NOT NULL,
    sms_consent       boolean NOT NULL,
    enrolled_at       timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

-- The simulated clock (SIMULATED_CLOCK=1): one row, moved only forward by POST /v1/clock.
CREATE TABLE simulated_clock (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    now  timestamptz
);
