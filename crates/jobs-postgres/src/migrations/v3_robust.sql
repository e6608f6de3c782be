-- jobs-postgres schema version 3 (helper robust, issue 9 items 6 and 8): suspects.
-- A job whose lease expired becomes a suspect; suspects are claimed only in quarantine (one
-- at a time, alone in their process), through their own small partial index, and only the
-- rescues of a suspect (strikes) count toward max_rescues. suspect is 0 for a job that is not
-- a suspect, 1 + its strikes for one. The normal claim skips suspects and filters on the
-- claimer's kinds; both are heap columns it reads anyway (FOR UPDATE).
ALTER TABLE {s}.jobs ADD COLUMN suspect integer NOT NULL DEFAULT 0 CHECK (suspect >= 0);
CREATE INDEX jobs_suspect_idx ON {s}.jobs (queue, priority DESC, run_at, id)
    WHERE state = 'available' AND suspect > 0;
