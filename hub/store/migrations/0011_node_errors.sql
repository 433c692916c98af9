-- A camera's loop errors (issue 15, "workers never die silently"): the exceptions its agent's
-- loops survived since it started, by step (EdgeStatus.errors, storesense.loop_guard), kept
-- beside its rejections so `storesense status` shows them. Owned by the alerts room.
ALTER TABLE nodes ADD COLUMN errors TEXT NOT NULL DEFAULT '{}';
