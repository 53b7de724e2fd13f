-- Signed-in web sessions carry the account's session version; signing out bumps it, which
-- revokes every session cookie issued before (web/auth.py).
ALTER TABLE users ADD COLUMN session_version integer NOT NULL DEFAULT 0;
