-- The console's read model, fed only from topics (patient-events.v1, decisions.v1,
-- recovery-events.v1, care-team-events.v1, clock.v1); no other service's schema is read.
-- Every write is idempotent, so a redelivered batch changes nothing.

-- One row per patient: the latest enrollment, consent, phase and open-alert count. A phase
-- event may arrive before the enrollment (another topic): then enrolled_at stays NULL.
CREATE TABLE patients (
    patient_id        text COLLATE "C" PRIMARY KEY,
    team              text COLLATE "C",
    name              text,
    enrollment        jsonb,
    surgery_date      date,
    timezone          text,
    baseline_severity smallint,
    sms_consent       boolean,
    consent_reason    text,
    phase             text,
    phase_day         integer,
    open_alerts       integer NOT NULL DEFAULT 0,
    enrolled_at       timestamptz,
    updated_at        timestamptz NOT NULL
);
CREATE INDEX patients_by_team ON patients (team, patient_id) WHERE enrolled_at IS NOT NULL;
CREATE INDEX patients_by_phase ON patients (team, phase, patient_id)
    WHERE enrolled_at IS NOT NULL;
CREATE INDEX patients_with_open_alerts ON patients (team, patient_id)
    WHERE enrolled_at IS NOT NULL AND open_alerts > 0;
CREATE INDEX patients_by_name ON patients (lower(name) text_pattern_ops) WHERE name IS NOT NULL;

-- Care-team alerts as the assessor decided them (alert_id = the decision's event id = the
-- notifier's notification id), and what the care team did with them.
CREATE TABLE alerts (
    alert_id        uuid PRIMARY KEY,
    patient_id      text COLLATE "C" NOT NULL,
    team            text COLLATE "C",
    kind            text NOT NULL,
    rule            text,
    urgency         text NOT NULL,
    evidence        jsonb NOT NULL DEFAULT '[]',
    raised_at       timestamptz NOT NULL,
    owner_sub       text,
    owner_name      text,
    owned_at        timestamptz,
    acknowledged_by text,
    acknowledged_at timestamptz,
    closed_at       timestamptz,
    closed_by       text,
    outcome         text,
    note            text
);
CREATE INDEX alerts_open ON alerts (team, raised_at)
    WHERE closed_at IS NULL;
CREATE INDEX alerts_by_patient ON alerts (patient_id, raised_at);

-- Every report (an alert's evidence), and what each patient texted: graded or worded
-- replies (channel sms), STOP and START.
CREATE TABLE reports (
    event_id   uuid PRIMARY KEY,
    patient_id text COLLATE "C" NOT NULL,
    at         timestamptz NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('report', 'stop', 'start')),
    channel    text NOT NULL,
    severity   smallint,
    note       text
);
CREATE INDEX reports_by_patient ON reports (patient_id, at);

-- The business clock (the latest clock.advanced; the wall clock when none).
CREATE TABLE clock (
    id  boolean PRIMARY KEY DEFAULT true CHECK (id),
    now timestamptz NOT NULL
);
