-- The report's language per subscription and per delivery (issue 14).
-- report_subscribers.language: a channel's or group's own choice (`/alpha vi`, the Discord
-- command's language option, the e-mail form's `lang`); NULL follows the owning account's
-- users.language, then English.
ALTER TABLE report_subscribers ADD COLUMN IF NOT EXISTS language text
    CHECK (language IS NULL OR language IN ('en', 'vi'));
-- deliveries.language: fixed when the row is created (fan-out, alert firing), so a language
-- change between a row's retries renders the same message and never makes a second send.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS language text
    CHECK (language IS NULL OR language IN ('en', 'vi'));
