-- migration 2011: no index on the change time
-- Only retention read this index, and it now finds old change rows through their operation ids; every captured row
-- paid to keep it.

DROP INDEX IF EXISTS loomworks_change_time;
