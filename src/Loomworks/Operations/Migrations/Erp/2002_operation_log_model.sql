-- migration 2002: the operation log as the model loomworks.ai.operation.log
-- The log as a model: ids and users as integer columns, times in UTC without zone, JSON as text, and the values of
-- hidden fields (password and key hashes) left out. 2007 redefines the view over loomworks_operation_log_read.

CREATE VIEW loomworks_ai_operation_log_rows AS
SELECT l.id::integer AS id,
       l.operation_type || coalesce(' ' || l.model_name, '') || ' #' || l.id AS name,
       l.session_id, l.agent_id, l.user_id::integer AS user_id, l.tool_name, l.operation_type, l.model_name,
       array_to_json(l.record_ids)::text AS record_ids,
       (SELECT jsonb_object_agg(e.key, e.value - '{access_token,index,key,password,raw}'::text[]) FROM jsonb_each(l.values_before) e)::text AS values_before,
       (SELECT jsonb_object_agg(e.key, e.value - '{access_token,index,key,password,raw}'::text[]) FROM jsonb_each(l.values_after) e)::text AS values_after,
       l.state, l.error_message, l.execution_time_ms, l.snapshot_id::integer AS snapshot_id, l.undone,
       l.undone_at AT TIME ZONE 'utc' AS undone_at, l.undone_by::integer AS undone_by, l.undo_of::integer AS undo_of,
       l.change_count,
       l.user_id::integer AS create_uid, l.created_at AT TIME ZONE 'utc' AS create_date,
       l.user_id::integer AS write_uid, coalesce(l.undone_at, l.created_at) AT TIME ZONE 'utc' AS write_date
FROM loomworks_ai_operation_log l;-- Read-only for every group: the dispatcher refuses writes even to the superuser, these rows grant reading.
INSERT INTO ir_model_access (name, model, group_id, perm_read, perm_write, perm_create, perm_unlink)
SELECT 'access_loomworks_ai_operation_log_' || g.xml_id, 'loomworks.ai.operation.log', g.id, true, false, false, false
FROM res_groups g WHERE g.xml_id IN ('base.group_system', 'base.group_user', 'loomworks.group_readonly');
