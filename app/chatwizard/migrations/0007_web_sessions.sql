-- Browser sign-in (web_sessions/): single-use links sent by mail, and cookie sessions. Like API keys,
-- only SHA-256 of a link's token or a session's id is stored.

-- An invitation (an admin invites an address; the account is made when the link is first used) or a
-- sign-in link (for an existing account). The address is field-encrypted with a blind index like
-- users.email; both are cleared once the link is used, as the account then holds the address.
CREATE TABLE sign_in_links (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash   bytea NOT NULL UNIQUE,
    kind         text NOT NULL CHECK (kind IN ('invitation', 'sign_in')),
    email        text,
    email_index  bytea,
    tier         text NOT NULL CHECK (tier IN ('free', 'pro', 'admin')),
    user_id      uuid REFERENCES users (id) ON DELETE CASCADE,  -- sign_in: whose account
    invited_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE INDEX sign_in_links_email_idx ON sign_in_links (email_index);
CREATE INDEX sign_in_links_expires_idx ON sign_in_links (expires_at);

CREATE TABLE web_sessions (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_hash  bytea NOT NULL UNIQUE,  -- SHA-256 of the cookie's value
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL  -- the absolute end; idleness may end it sooner
);
CREATE INDEX web_sessions_user_idx ON web_sessions (user_id);
