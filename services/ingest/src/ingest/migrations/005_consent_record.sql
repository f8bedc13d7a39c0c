-- Every change of a patient's SMS consent: when, how (the channel), by whom, and the event
-- it published. What a TCPA or CTIA complaint asks for ("when did this patient agree,
-- when did they opt out, how, and who recorded it"). No phone number, no message text:
-- the patient is named by id, the SMS keyword by its kind (STOP/START), a clinician by
-- the identity provider's subject. Rows are only ever added.
CREATE TABLE IF NOT EXISTS consent_record (
    id bigserial PRIMARY KEY,
    patient_id text NOT NULL,
    sms_consent boolean NOT NULL,
    channel text NOT NULL
        CHECK (channel IN ('enrollment_form', 'sms_keyword', 'clinician_phone')),
    -- 'patient by SMS', or the subject (sub) of the clinician or client that recorded it.
    actor text NOT NULL CHECK (length(actor) BETWEEN 1 AND 256),
    -- For SMS: the keyword's kind (stop, start); otherwise NULL.
    keyword text CHECK (keyword IN ('stop', 'start')),
    event_id uuid NOT NULL UNIQUE,
    -- The business time of the change (the simulated clock's, when it runs).
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS consent_record_patient ON consent_record (patient_id, id);
