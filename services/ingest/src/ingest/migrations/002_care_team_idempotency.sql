-- Care-team phones -> the patients they cover, to route `ACK <code>` texts.
CREATE TABLE care_team_phones (
    patient_id text NOT NULL REFERENCES patients (patient_id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('on_call', 'backup')),
    phone      text NOT NULL,
    PRIMARY KEY (patient_id, role)
);
CREATE INDEX care_team_phones_by_phone ON care_team_phones (phone);

INSERT INTO care_team_phones (patient_id, role, phone)
SELECT patient_id, 'on_call', care_team ->> 'on_call' FROM patients
WHERE care_team ->> 'on_call' IS NOT NULL
UNION ALL
SELECT patient_id, 'backup', care_team ->> 'backup' FROM patients
WHERE care_team ->> 'backup' IS NOT NULL;

-- Idempotency: a request key (scope = the endpoint) -> the fingerprint of the request it
-- was first used with, and the answer given. Written in the request's transaction, which
-- commits only after the broker acknowledged the event, so a stored answer always means
-- the event is in Kafka. Inbound texts use it too, keyed by Twilio's MessageSid.
CREATE TABLE idempotency_keys (
    scope       text NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    status_code smallint,
    media_type  text,
    body        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
