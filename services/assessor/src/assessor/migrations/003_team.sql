-- The patient's care team (care_team.team in the enrollment): the read API answers only
-- callers of that team.
ALTER TABLE recovery ADD COLUMN team text NOT NULL DEFAULT 'default';
