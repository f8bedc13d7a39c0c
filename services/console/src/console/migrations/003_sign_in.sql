-- OIDC sign-in. A session row also knows when its access token expires (refreshed then)
-- and whose it is; a pending sign-in keeps the PKCE verifier and the nonce server-side,
-- keyed by a hash of the state and bound to the browser that started it.
ALTER TABLE sessions ADD COLUMN access_expires_at timestamptz;
ALTER TABLE sessions ADD COLUMN sub text;
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE sign_ins (
    state_hash    text PRIMARY KEY,
    browser_hash  text NOT NULL,
    nonce         text NOT NULL,
    code_verifier text NOT NULL,
    next_path     text NOT NULL,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX sign_ins_expires ON sign_ins (expires_at);
