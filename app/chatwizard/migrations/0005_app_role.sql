-- The role the app's login belongs to, holding what serving needs and no more. The schema's owner
-- (the migrating login) keeps DDL; the app may read and write its tables, but on audit_events only
-- INSERT and SELECT, so the security record stays append-only even for a compromised app process.
-- Erasure and retention change audit rows only through the two functions below, which run as the
-- owner with the maintenance flag set for their own duration (docs/security/threat-model.md).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'chatwizard_app') THEN
        CREATE ROLE chatwizard_app NOLOGIN;
    END IF;
END $$;

GRANT USAGE ON SCHEMA public TO chatwizard_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO chatwizard_app;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO chatwizard_app;
REVOKE UPDATE, DELETE ON audit_events FROM chatwizard_app;
REVOKE INSERT, UPDATE, DELETE ON schema_migrations FROM chatwizard_app;
-- Tables later migrations create get the same grants; a table that needs less revokes it there.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO chatwizard_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO chatwizard_app;

-- Erasure: the user's past events stay (they are the security record) but no longer name them.
CREATE FUNCTION audit_forget(erased uuid) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp SET chatwizard.audit_maintenance = 'on'
AS $$
    WITH changed AS (
        UPDATE audit_events SET actor_user = NULL, actor_key = NULL, source = NULL,
            target = CASE WHEN target = 'user:' || erased THEN NULL ELSE target END
        WHERE actor_user = erased OR target = 'user:' || erased
        RETURNING 1
    )
    SELECT count(*) FROM changed
$$;

-- Retention: delete up to batch_size events older than days; returns how many went.
CREATE FUNCTION audit_purge(days integer, batch_size integer) RETURNS bigint
LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp SET chatwizard.audit_maintenance = 'on'
AS $$
    WITH gone AS (
        DELETE FROM audit_events WHERE id IN
            (SELECT id FROM audit_events WHERE at < now() - make_interval(days => days) LIMIT batch_size)
        RETURNING 1
    )
    SELECT count(*) FROM gone
$$;

REVOKE EXECUTE ON FUNCTION audit_forget(uuid), audit_purge(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_forget(uuid), audit_purge(integer, integer) TO chatwizard_app;
