-- Care teams bound who may read a patient's notifications and acknowledge their pages:
-- each notification carries its patient's team (from the decision), and the team of every
-- enrolled patient is kept from patient-events.v1 (so a patient with no notification yet
-- has one too).
ALTER TABLE notifications ADD COLUMN team text NOT NULL DEFAULT 'default';

CREATE TABLE patient_teams (
    patient_id text PRIMARY KEY,
    team       text NOT NULL,
    changed_at timestamptz NOT NULL
);
