-- Chat Wizard schema v1. Applied once by `chatwizard migrate`; see core/migrate.py.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- array_to_string is only STABLE; generated columns need IMMUTABLE (true for text[] input).
CREATE FUNCTION tags_text(text[]) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT array_to_string($1, ' ') $$;

CREATE TABLE users (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email       text NOT NULL UNIQUE,
    tier        text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'pro', 'admin', 'service')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    display_hint  text NOT NULL,                 -- first characters, to recognise a key in lists
    key_hash      bytea NOT NULL UNIQUE,         -- SHA-256 of the full key; the key itself is never stored
    scopes        text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

-- The catalogue: YouTube videos with a 384-dim embedding (semantic) and a tsvector (keywords).
CREATE TABLE videos (
    id             text PRIMARY KEY,             -- YouTube video id
    title          text NOT NULL,
    description    text NOT NULL DEFAULT '',
    channel_id     text NOT NULL,
    channel_title  text NOT NULL,
    published_at   timestamptz,
    duration_s     integer NOT NULL CHECK (duration_s >= 0),
    thumbnail_url  text,
    tags           text[] NOT NULL DEFAULT '{}',
    view_count     bigint NOT NULL DEFAULT 0,
    embedding      vector(384) NOT NULL,
    search_tsv     tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') ||
        setweight(to_tsvector('english', tags_text(tags)), 'B') ||
        setweight(to_tsvector('english', left(description, 2000)), 'C')) STORED,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX videos_embedding_hnsw ON videos USING hnsw (embedding vector_cosine_ops)
    WITH (m = 16, ef_construction = 64);
CREATE INDEX videos_search_tsv_idx ON videos USING gin (search_tsv);
CREATE INDEX videos_title_trgm_idx ON videos USING gin (title gin_trgm_ops);

-- Bumped by every ingest that changes the catalogue; part of every cache key.
CREATE TABLE catalogue_state (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    version  bigint NOT NULL DEFAULT 0
);
INSERT INTO catalogue_state DEFAULT VALUES;

CREATE TABLE conversations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_user_idx ON conversations (user_id, updated_at DESC);

CREATE TABLE messages (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id  uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role             text NOT NULL CHECK (role IN ('user', 'assistant')),
    content          text NOT NULL,
    videos           jsonb NOT NULL DEFAULT '[]',
    answer_source    text,
    cache            text,
    input_tokens     integer NOT NULL DEFAULT 0,
    output_tokens    integer NOT NULL DEFAULT 0,
    cost_usd         numeric(12, 8) NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, created_at);
CREATE INDEX messages_created_idx ON messages (created_at);

CREATE TABLE learning_paths (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX learning_paths_user_idx ON learning_paths (user_id, created_at DESC);

CREATE TABLE learning_path_videos (
    path_id   uuid NOT NULL REFERENCES learning_paths (id) ON DELETE CASCADE,
    video_id  text NOT NULL REFERENCES videos (id),
    position  integer NOT NULL,
    PRIMARY KEY (path_id, video_id),
    UNIQUE (path_id, position) DEFERRABLE INITIALLY DEFERRED
);

-- Raw events, idempotent by the client's event id; video_progress is the folded state.
CREATE TABLE progress_events (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_id    uuid NOT NULL,
    video_id    text NOT NULL REFERENCES videos (id),
    kind        text NOT NULL CHECK (kind IN ('click', 'progress', 'complete')),
    position_s  integer,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_id)
);

CREATE TABLE video_progress (
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video_id      text NOT NULL REFERENCES videos (id),
    clicks        integer NOT NULL DEFAULT 0,
    position_s    integer NOT NULL DEFAULT 0,
    completed_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, video_id)
);

CREATE TABLE calendar_sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video_id      text REFERENCES videos (id),
    path_id       uuid REFERENCES learning_paths (id) ON DELETE CASCADE,
    title         text NOT NULL,
    starts_at     timestamptz NOT NULL,
    duration_min  integer NOT NULL CHECK (duration_min BETWEEN 5 AND 480),
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((video_id IS NULL) <> (path_id IS NULL))
);
CREATE INDEX calendar_sessions_user_idx ON calendar_sessions (user_id, starts_at);

-- One feed token per user; only its hash is kept, so a database leak does not expose feeds.
CREATE TABLE calendar_feeds (
    user_id     uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
