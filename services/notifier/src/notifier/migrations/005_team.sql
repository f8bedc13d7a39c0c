-- Care teams bound who may read a patient's notifications and acknowledge their pages:
-- each notification carries its patient's team (from the decision), and the team of every
-- enrolled patient is kept from patient-events.v1 (so a patient with no notification yet
-- has one too). Idempotent: a database that ran it as 003_team (before main's 003 and
-- 004) runs it again harmlessly.
ALTER TABLE notifications ADD COLUMN IF NOT EXISTS team text NOT NULL DEFAULT 'default';

CREATE TABLE IF NOT EXISTS patient_teams (
    patient_id text PRIMARY KEY,
    team       text NOT NULL,
    changed_at timestamptz NOT NULL
);
