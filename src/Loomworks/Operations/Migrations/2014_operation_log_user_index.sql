-- migration 2014: the operation log found by user
-- A user who is not an administrator sees only their own operations, newest first, a page at a time by id: this index
-- serves that page as the session, agent and model indexes serve theirs.

CREATE INDEX loomworks_ai_operation_log_user ON loomworks_ai_operation_log (user_id, id) WHERE user_id IS NOT NULL;
