-- Erasure: what is left of an erased patient here. A phone that had opted out stays on the
-- suppression list as a keyed hash only (HMAC, so the list cannot be reversed by hashing
-- every phone number), so a STOP is still honoured if the number is enrolled again.
CREATE TABLE suppressed_phones (
    phone_hash text PRIMARY KEY,
    changed_at timestamptz NOT NULL
);
-- Erased patient ids (pseudonymous ids, no data), so the API answers 404 for them.
CREATE TABLE erased_patients (
    patient_id text PRIMARY KEY,
    erased_at  timestamptz NOT NULL
);
