-- The audit trail: who read or changed which patient's data, when, from where, and whether
-- it was allowed. Append-only: rows are written only through audit.append() (SECURITY
-- DEFINER), which numbers them and chains each row's hash to the previous one, so an edited
-- or deleted row breaks the chain (python -m shared.audit verify). The writing role
-- (hfs_audit_writer where it exists; AUDIT_DATABASE_URL) may execute append() and nothing
-- else: no SELECT, UPDATE or DELETE. No phone number or message body is ever stored here.
CREATE TABLE events (
    seq          bigint PRIMARY KEY,
    at           timestamptz NOT NULL,
    actor_sub    text NOT NULL,
    actor_name   text,
    actor_client text,
    action       text NOT NULL,
    patient_id   text,
    resource     text,
    outcome      text NOT NULL,
    source       text,
    service      text NOT NULL,
    digest       text NOT NULL,   -- sha256 of the row's canonical JSON (hex)
    prev_hash    text NOT NULL,   -- the previous row's hash (64 zeros for the first)
    hash         text NOT NULL    -- sha256(prev_hash || digest)
);
CREATE INDEX events_patient ON events (patient_id, seq);
CREATE INDEX events_actor ON events (actor_sub, seq);
CREATE INDEX events_at ON events (at);

-- Retention removes the oldest rows; each purge records where the chain now starts, so a
-- deletion at the head is told apart from retention.
CREATE TABLE purges (
    purged_at  timestamptz NOT NULL DEFAULT now(),
    up_to_seq  bigint NOT NULL,
    hash       text NOT NULL
);

CREATE FUNCTION append(entries jsonb) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = audit, pg_temp AS $$
DECLARE
    e jsonb;
    last_seq bigint;
    last_hash text;
    h text;
BEGIN
    -- One writer at a time extends the chain (a batch of entries per call).
    PERFORM pg_advisory_xact_lock(hashtext('audit.events'));
    SELECT seq, hash INTO last_seq, last_hash FROM audit.events ORDER BY seq DESC LIMIT 1;
    IF last_seq IS NULL THEN
        SELECT up_to_seq, hash INTO last_seq, last_hash FROM audit.purges
            ORDER BY up_to_seq DESC LIMIT 1;
    END IF;
    last_seq := COALESCE(last_seq, 0);
    last_hash := COALESCE(last_hash, repeat('0', 64));
    FOR e IN SELECT * FROM jsonb_array_elements(entries) LOOP
        last_seq := last_seq + 1;
        h := encode(sha256(convert_to(last_hash || (e->>'digest'), 'UTF8')), 'hex');
        INSERT INTO audit.events (seq, at, actor_sub, actor_name, actor_client, action,
            patient_id, resource, outcome, source, service, digest, prev_hash, hash)
        VALUES (last_seq, (e->>'at')::timestamptz, e->>'actor_sub', e->>'actor_name',
            e->>'actor_client', e->>'action', e->>'patient_id', e->>'resource',
            e->>'outcome', e->>'source', e->>'service', e->>'digest', last_hash, h);
        last_hash := h;
    END LOOP;
END $$;

CREATE FUNCTION purge(keep interval) RETURNS bigint
LANGUAGE plpgsql SET search_path = audit, pg_temp AS $$
DECLARE
    cut_seq bigint;
    cut_hash text;
    n bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('audit.events'));
    SELECT seq, hash INTO cut_seq, cut_hash FROM audit.events
        WHERE at < now() - keep ORDER BY seq DESC LIMIT 1;
    IF cut_seq IS NULL THEN
        RETURN 0;
    END IF;
    DELETE FROM audit.events WHERE seq <= cut_seq;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO audit.purges (up_to_seq, hash) VALUES (cut_seq, cut_hash);
    RETURN n;
END $$;

REVOKE ALL ON FUNCTION append(jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION purge(interval) FROM PUBLIC;
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'hfs_audit_writer') THEN
        GRANT USAGE ON SCHEMA audit TO hfs_audit_writer;
        GRANT EXECUTE ON FUNCTION audit.append(jsonb) TO hfs_audit_writer;
    END IF;
END $$;
