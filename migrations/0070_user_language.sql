-- The user's saved language (`/lang` in the bots, the account page). NULL: not chosen, so each
-- turn follows the message's own language, then the platform's hint, then English.
ALTER TABLE users ADD COLUMN IF NOT EXISTS language text
    CHECK (language IS NULL OR language IN ('en', 'vi'));
