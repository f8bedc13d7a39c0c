-- When the patient was last asked to reply with a number (an unclear reply is asked once).
ALTER TABLE patients ADD COLUMN IF NOT EXISTS grade_asked_at timestamptz;
