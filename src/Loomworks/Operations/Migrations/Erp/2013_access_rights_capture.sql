-- migration 2013: change capture on the access rights a group's deletion removes
-- A group's access rights go with it (ON DELETE CASCADE): captured so that undoing the group's deletion brings them
-- back.

SELECT loomworks_install_capture('ir_model_access', '{}');

