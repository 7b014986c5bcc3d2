-- migration 2006: what an operation changed read from its change rows

-- A log row whose record_ids is NULL has its record ids, values and change count read from its change rows
-- (loomworks_operation_summary), so committing an operation aggregates nothing and writes no copy of its rows.
-- Retention stores the summary in the row before it prunes the changes it comes from.
ALTER TABLE loomworks_ai_operation_log ALTER COLUMN record_ids DROP NOT NULL, ALTER COLUMN record_ids DROP DEFAULT,
    ALTER COLUMN change_count DROP NOT NULL, ALTER COLUMN change_count DROP DEFAULT;

CREATE FUNCTION loomworks_operation_summary(op bigint, model text,
    OUT record_ids bigint[], OUT values_before jsonb, OUT values_after jsonb, OUT change_count integer)
LANGUAGE sql STABLE AS $fn$
    WITH c AS (
        SELECT id, table_name, row_key, old_row, new_row FROM loomworks_change WHERE operation_id = op),
    main AS (
        SELECT (row_key ->> 'id')::bigint AS rid,
               (array_agg(old_row ORDER BY id))[1] AS before,
               (array_agg(new_row ORDER BY id DESC))[1] AS after
        FROM c
        WHERE table_name = replace(model, '.', '_') AND row_key ? 'id' AND jsonb_typeof(row_key -> 'id') = 'number'
        GROUP BY 1)
    SELECT coalesce((SELECT array_agg(rid ORDER BY rid) FROM main), '{}'),
           (SELECT jsonb_object_agg(rid, before) FROM main WHERE before IS NOT NULL),
           (SELECT jsonb_object_agg(rid, after) FROM main WHERE after IS NOT NULL),
           (SELECT count(*) FROM c)::integer
$fn$;

-- The log as readers see it: stored summaries as they are, the others from the change rows.
CREATE VIEW loomworks_operation_log_read AS
SELECT l.id, l.session_id, l.agent_id, l.user_id, l.tool_name, l.operation_type, l.model_name,
       coalesce(l.record_ids, s.record_ids) AS record_ids,
       CASE WHEN l.record_ids IS NULL THEN s.values_before ELSE l.values_before END AS values_before,
       CASE WHEN l.record_ids IS NULL THEN s.values_after ELSE l.values_after END AS values_after,
       l.state, l.error_message, l.execution_time_ms, l.snapshot_id, l.undone, l.undone_at, l.undone_by, l.undo_of,
       coalesce(l.change_count, s.change_count) AS change_count, l.created_at
FROM loomworks_ai_operation_log l
LEFT JOIN LATERAL (SELECT * FROM loomworks_operation_summary(l.id, l.model_name) WHERE l.record_ids IS NULL) s ON true;
