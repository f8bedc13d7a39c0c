-- The outbox: each signed Twilio webhook's events (an inbound text, a status callback),
-- written in the transaction that answers the webhook, before Twilio hears 200. A relay
-- publishes them to Kafka in id order (one relay at a time, under an advisory lock), so a
-- broker outage delays inbound texts and never drops them. One row per event: event ids
-- derive from the MessageSid, so a webhook Twilio repeats adds nothing.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    topic         text NOT NULL,
    key           text,
    event_type    text NOT NULL,
    value         bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
