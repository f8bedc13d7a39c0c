-- Browser sessions after OIDC sign-in, by a hash of the cookie's random value. The tokens
-- are the user's: the access token is forwarded to the services, refreshed when it expires,
-- and the ID token names the IdP session to end at logout.
CREATE TABLE sessions (
    session_hash  text PRIMARY KEY,
    access_token  text NOT NULL,
    refresh_token text,
    id_token      text,
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL
);
