-- The ledger: every notification the assessor decided, one row per dedupe key. It is also
-- the dispatcher's work queue (claimed with FOR UPDATE SKIP LOCKED).
CREATE TABLE notifications (
    notification_id uuid PRIMARY KEY,
    dedupe_key      text NOT NULL UNIQUE,
    patient_id      text NOT NULL,
    kind            text NOT NULL,
    audience        text NOT NULL CHECK (audience IN ('patient', 'care_team')),
    urgency         text NOT NULL CHECK (urgency IN ('routine', 'urgent')),
    to_phone        text NOT NULL,
    language        text NOT NULL,
    timezone        text NOT NULL,
    facts           jsonb NOT NULL DEFAULT '{}',
    evidence        jsonb NOT NULL DEFAULT '[]',
    rule            text,
    body            text,
    status          text NOT NULL CHECK (status IN ('scheduled', 'sending', 'sent', 'delivered',
                        'failed', 'suppressed', 'acknowledged', 'escalated')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    provider_sid    text,
    created_at      timestamptz NOT NULL,
    scheduled_for   timestamptz NOT NULL,
    sent_at         timestamptz,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX notifications_due ON notifications (scheduled_for) WHERE status = 'scheduled';
CREATE INDEX notifications_patient ON notifications (patient_id, created_at);
