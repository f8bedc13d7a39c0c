-- Effectively-once delivery, provider status callbacks, paging with escalation, consent and
-- the simulated clock. Times named *_at are on the business clock (the simulated clock when
-- SIMULATED_CLOCK=1) unless marked "wall clock": leases and retry back-off are about the
-- provider and this process, which live in real time.
ALTER TABLE notifications
    -- pages: who else may acknowledge, the code to reply with, the escalation chain
    ADD COLUMN backup_phone       text,
    ADD COLUMN ack_code           text,
    ADD COLUMN root_id            uuid REFERENCES notifications (notification_id),
    ADD COLUMN escalation_step    integer NOT NULL DEFAULT 0,
    ADD COLUMN escalations_done   integer NOT NULL DEFAULT 0,
    ADD COLUMN next_escalation_at timestamptz,
    ADD COLUMN acknowledged_at    timestamptz,
    -- sending: wall-clock lease and retry time, when the provider call began (wall clock),
    -- and whether an earlier attempt may have reached the provider (look before resending)
    ADD COLUMN retry_at           timestamptz,
    ADD COLUMN lease_until        timestamptz,
    ADD COLUMN call_started_at    timestamptz,
    ADD COLUMN verify_before_send boolean NOT NULL DEFAULT false,
    -- what the provider last told us (status callbacks), and its error code
    ADD COLUMN provider_status    text,
    ADD COLUMN error_code         integer;

-- An SMS "ACK 7KQ2" names one alert: codes are unique among alerts (escalations share
-- their alert's code).
CREATE UNIQUE INDEX notifications_ack_code ON notifications (ack_code)
    WHERE root_id IS NULL AND ack_code IS NOT NULL;
CREATE INDEX notifications_sending ON notifications (lease_until) WHERE status = 'sending';
CREATE INDEX notifications_escalation ON notifications (next_escalation_at)
    WHERE next_escalation_at IS NOT NULL;
CREATE INDEX notifications_provider_sid ON notifications (provider_sid)
    WHERE provider_sid IS NOT NULL;
CREATE INDEX notifications_to_phone ON notifications (to_phone, audience);
CREATE INDEX notifications_root ON notifications (root_id) WHERE root_id IS NOT NULL;

-- The furthest status the provider reported per message, whatever order callbacks come in,
-- kept even when a callback arrives before the send is recorded.
CREATE TABLE provider_statuses (
    message_sid  text PRIMARY KEY,
    status       text NOT NULL,
    rank         integer NOT NULL,
    error_code   integer,
    reported_at  timestamptz NOT NULL
);

-- The notifier's copy of consent, from patient-events.v1 and from provider error 21610.
CREATE TABLE suppressions (
    patient_id  text PRIMARY KEY,
    suppressed  boolean NOT NULL,
    reason      text NOT NULL,
    changed_at  timestamptz NOT NULL,
    event_id    uuid
);

-- The simulated clock: the latest clock.advanced consumed (one row).
CREATE TABLE clock (
    id   boolean PRIMARY KEY DEFAULT true CHECK (id),
    now  timestamptz NOT NULL
);
