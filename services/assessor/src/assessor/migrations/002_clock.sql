-- The read API reports the patient's stream time (the later of the clock and the latest
-- report) and day as of now, not as of the patient's last event: it needs the clock each
-- partition has reached, and each patient's calendar.
ALTER TABLE recovery ADD COLUMN surgery_date date, ADD COLUMN timezone text;

CREATE TABLE clock (
    partition integer PRIMARY KEY,
    now       timestamptz NOT NULL
);
