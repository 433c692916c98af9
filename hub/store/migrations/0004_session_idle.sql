-- Login sessions end after a configurable idle time (app.session_idle_s), not only at their
-- 12-hour expiry: the hub records when a session was last used by its phone (hub/staff).
-- NULL (sessions made before this version) reads as created_at.
ALTER TABLE web_sessions ADD COLUMN last_used_at REAL;
