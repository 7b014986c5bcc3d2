-- migration 2007: the operation log model reads what an operation changed from its change rows
-- The operation log model reads what an operation changed from its change rows (loomworks_operation_log_read, 2006).

CREATE OR REPLACE VIEW loomworks_ai_operation_log_rows AS
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
FROM loomworks_operation_log_read l;
