-- Email sign-in links: single use, 15-minute expiry, stored as a SHA-256 hash of the token
-- (the token itself only ever exists in the email).
CREATE TABLE magic_links (
    token_hash  text PRIMARY KEY,
    email       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX magic_links_email_idx ON magic_links (email, created_at);
