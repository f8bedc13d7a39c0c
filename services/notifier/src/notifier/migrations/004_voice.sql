-- The second channel: an urgent alert not acknowledged by its first escalation step also
-- calls the on-call (then, at the next step, the backup). A call is a ledger row like a text
-- (same queue, same retries), with channel 'voice' and the words it says as its body.
ALTER TABLE notifications
    ADD COLUMN channel text NOT NULL DEFAULT 'sms' CHECK (channel IN ('sms', 'voice'));
