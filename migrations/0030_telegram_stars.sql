-- Telegram Stars: Pro as a 30-day Stars subscription, kept in the same `subscriptions` table
-- as Stripe's (one account, one entitlement, whichever way it was paid). A Stars row is live
-- until its current_period_end: Telegram renews by sending another payment; an unrenewed
-- period simply ends (billing.tiers.recompute_tier ignores it, the expiry sweep closes it).
ALTER TABLE subscriptions ADD COLUMN source text NOT NULL DEFAULT 'stripe'
    CHECK (source IN ('stripe', 'telegram_stars'));
ALTER TABLE subscriptions ADD COLUMN telegram_user_id bigint;
CREATE UNIQUE INDEX subscriptions_stars_live_idx ON subscriptions (telegram_user_id)
    WHERE source = 'telegram_stars' AND ended_at IS NULL;
CREATE INDEX subscriptions_stars_end_idx ON subscriptions (current_period_end)
    WHERE source = 'telegram_stars' AND ended_at IS NULL;

-- Every Stars payment, once: telegram_payment_charge_id is the idempotency key.
CREATE TABLE telegram_star_payments (
    charge_id           text PRIMARY KEY,
    subscription_id     bigint NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    user_id             bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    telegram_user_id    bigint NOT NULL,
    tier                text NOT NULL CHECK (tier IN ('pro', 'enterprise')),
    total_amount        integer NOT NULL,
    currency            text NOT NULL,
    expires_at          timestamptz NOT NULL,
    is_recurring        boolean NOT NULL DEFAULT false,
    is_first_recurring  boolean NOT NULL DEFAULT false,
    received_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX telegram_star_payments_user_idx ON telegram_star_payments (user_id);
