-- Pages until answered. An alert's escalation timer starts when it is recorded (not when a
-- send first succeeds), so the policy runs on schedule through a provider outage; an alert
-- still unacknowledged when its last reminder's interval runs out is an incident.
ALTER TABLE notifications ADD COLUMN incident_at timestamptz;
CREATE INDEX notifications_incident ON notifications (incident_at)
    WHERE incident_at IS NOT NULL AND acknowledged_at IS NULL;

-- ACK codes are unique only among open (unacknowledged) alerts, so the space never runs out.
DROP INDEX notifications_ack_code;
CREATE UNIQUE INDEX notifications_ack_code_open ON notifications (ack_code)
    WHERE root_id IS NULL AND ack_code IS NOT NULL AND acknowledged_at IS NULL;

-- Wrong ACK codes per phone (wall clock), to throttle guessing.
CREATE TABLE ack_failures (
    from_phone  text NOT NULL,
    at          timestamptz NOT NULL
);
CREATE INDEX ack_failures_phone ON ack_failures (from_phone, at);
