-- Report subscriptions: who asked (account), where it goes, whether it is confirmed (email
-- double opt-in) and why it stopped (a user's unsubscribe, a blocked bot, a hard bounce).
ALTER TABLE report_subscribers
    ADD COLUMN confirmed_at        timestamptz,
    ADD COLUMN deactivated_reason  text,
    ADD COLUMN updated_at          timestamptz NOT NULL DEFAULT now();
-- Telegram and Discord subscriptions are confirmed by the command that made them.
UPDATE report_subscribers SET confirmed_at = created_at WHERE channel <> 'email';
CREATE INDEX report_subscribers_active_idx ON report_subscribers (channel)
    WHERE active AND confirmed_at IS NOT NULL;
