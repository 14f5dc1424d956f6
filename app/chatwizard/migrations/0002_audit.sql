-- Append-only audit trail of security events: who (user, key), what (action, target, outcome), when,
-- from where (client address). Rows change only under the maintenance flag that retention and erasure
-- set (SET LOCAL chatwizard.audit_maintenance = 'on'); in production the app's role also holds only
-- INSERT and SELECT on it (docs/security/threat-model.md).
CREATE TABLE audit_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    actor_user  uuid,            -- NULL: anonymous, an operator at the CLI, or since erased
    actor_key   uuid,
    source      inet,            -- the client's address
    target      text,            -- the route or object acted on
    detail      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_action_idx ON audit_events (action, at);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_user) WHERE actor_user IS NOT NULL;

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('chatwizard.audit_maintenance', true) IS DISTINCT FROM 'on' THEN
        RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
    END IF;
    RETURN CASE WHEN TG_LEVEL = 'STATEMENT' THEN NULL WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
