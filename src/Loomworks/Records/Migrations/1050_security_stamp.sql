-- migration 1050: security stamp for cached credential checks and access rights
-- One statement trigger per table, fired even when no row matched: cheap, and never misses a change.

CREATE TABLE loomworks_security_stamp (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    stamp uuid NOT NULL);
INSERT INTO loomworks_security_stamp (stamp) VALUES (gen_random_uuid());
CREATE FUNCTION loomworks_bump_security_stamp() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    UPDATE loomworks_security_stamp SET stamp = gen_random_uuid();
    RETURN NULL;
END
$f$;
CREATE TRIGGER loomworks_security_stamp AFTER INSERT OR DELETE OR TRUNCATE ON res_users
    FOR EACH STATEMENT EXECUTE FUNCTION loomworks_bump_security_stamp();
-- Not on every update: a login stamps login_date, and that must not throw every cached check away.
CREATE TRIGGER loomworks_security_stamp_update AFTER UPDATE OF id, login, password, active ON res_users
    FOR EACH STATEMENT EXECUTE FUNCTION loomworks_bump_security_stamp();
CREATE TRIGGER loomworks_security_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON res_users_apikeys
    FOR EACH STATEMENT EXECUTE FUNCTION loomworks_bump_security_stamp();
CREATE TRIGGER loomworks_security_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON res_groups_users_rel
    FOR EACH STATEMENT EXECUTE FUNCTION loomworks_bump_security_stamp();
CREATE TRIGGER loomworks_security_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON res_groups
    FOR EACH STATEMENT EXECUTE FUNCTION loomworks_bump_security_stamp();
CREATE TRIGGER loomworks_security_stamp AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON ir_model_access
    FOR EACH STATEMENT EXECUTE FUNCTION loomworks_bump_security_stamp();
