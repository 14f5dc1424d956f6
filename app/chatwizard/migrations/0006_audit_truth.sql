-- The audit trail says what happened per event, and the app's role can no longer empty it.
--
-- 1. Repeated failures and denials are stored as one row per (event, route, source, actor) and
--    window, carrying how many events it stands for (`occurrences`) and when the last one came
--    (`last_at`; NULL for a single event), instead of being dropped.
-- 2. The user an event acted on is a column (`subject_user`), never text in `detail`, so erasure can
--    find every row that names the user through an index.
-- 3. An event naming a user who no longer exists is stored without them: a process may write an
--    erased user's tallied failures after the erasure (the trigger below).
-- 4. The two owner-run functions the app's role may call do only what serving needs: `audit_purge`
--    refuses a retention under 30 days (the floor of CHATWIZARD_RETENTION_AUDIT_DAYS), and
--    `audit_forget` acts only for a user who no longer exists, i.e. inside an erasure.
ALTER TABLE audit_events
    ADD COLUMN occurrences integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    ADD COLUMN last_at timestamptz,
    ADD COLUMN subject_user uuid;
CREATE INDEX audit_events_subject_idx ON audit_events (subject_user) WHERE subject_user IS NOT NULL;

-- Rows written before: the subject was in `target` ('user:<id>') or in `detail` ({"for": "user:<id>"}).
SET LOCAL chatwizard.audit_maintenance = 'on';
UPDATE audit_events SET
    subject_user = coalesce(substring(target FROM '^user:([0-9a-f-]{36})$'),
                            substring(detail ->> 'for' FROM '^user:([0-9a-f-]{36})$'))::uuid,
    detail = detail - 'for'
WHERE target ~ '^user:[0-9a-f-]{36}$' OR detail ->> 'for' ~ '^user:[0-9a-f-]{36}$';
-- Erasures before this migration left the admin's row naming the erased user in `detail`.
UPDATE audit_events a SET subject_user = NULL, target = CASE WHEN a.target LIKE 'user:%' THEN NULL ELSE a.target END
WHERE a.subject_user IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = a.subject_user);
RESET chatwizard.audit_maintenance;

-- Erasure: the user's past events stay (they are the security record) but no longer name them: their
-- own events lose who and from where; events done to them lose the subject (and a 'user:' target).
CREATE OR REPLACE FUNCTION audit_forget(erased uuid) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET chatwizard.audit_maintenance = 'on'
AS $$
DECLARE
    changed bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM users WHERE id = erased) THEN
        RAISE EXCEPTION 'audit_forget: user % still exists; it runs only inside an erasure', erased
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE audit_events SET  -- every right-hand side sees the row as it was
        actor_user = CASE WHEN actor_user = erased THEN NULL ELSE actor_user END,
        actor_key = CASE WHEN actor_user = erased THEN NULL ELSE actor_key END,
        source = CASE WHEN actor_user = erased THEN NULL ELSE source END,
        subject_user = CASE WHEN subject_user = erased THEN NULL ELSE subject_user END,
        target = CASE WHEN target = 'user:' || erased THEN NULL ELSE target END
    WHERE actor_user = erased OR subject_user = erased;
    GET DIAGNOSTICS changed = ROW_COUNT;
    RETURN changed;
END $$;

-- Events tallied before an erasure and written after it. The lock (what a foreign key takes) orders
-- this insert with a concurrent erasure: either the erasure's audit_forget sees the row, or this sees
-- the user gone.
CREATE FUNCTION audit_events_without_erased() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp
AS $$
BEGIN
    IF NEW.actor_user IS NOT NULL THEN
        PERFORM 1 FROM users WHERE id = NEW.actor_user FOR KEY SHARE;
        IF NOT FOUND THEN
            NEW.actor_user := NULL;
            NEW.actor_key := NULL;
            NEW.source := NULL;
        END IF;
    END IF;
    IF NEW.subject_user IS NOT NULL THEN
        PERFORM 1 FROM users WHERE id = NEW.subject_user FOR KEY SHARE;
        IF NOT FOUND THEN
            NEW.target := CASE WHEN NEW.target = 'user:' || NEW.subject_user THEN NULL ELSE NEW.target END;
            NEW.subject_user := NULL;
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER audit_events_erased_users BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_without_erased();

-- Retention: delete up to batch_size events older than days (at least 30); returns how many went.
CREATE OR REPLACE FUNCTION audit_purge(days integer, batch_size integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET chatwizard.audit_maintenance = 'on'
AS $$
DECLARE
    gone bigint;
BEGIN
    IF days IS NULL OR days < 30 THEN
        RAISE EXCEPTION 'audit_purge: audit events are kept at least 30 days (asked: %)', days
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    WITH deleted AS (
        DELETE FROM audit_events WHERE id IN
            (SELECT id FROM audit_events WHERE at < now() - make_interval(days => days) LIMIT batch_size)
        RETURNING 1
    )
    SELECT count(*) INTO gone FROM deleted;
    RETURN gone;
END $$;

REVOKE EXECUTE ON FUNCTION audit_forget(uuid), audit_purge(integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit_forget(uuid), audit_purge(integer, integer) TO chatwizard_app;
