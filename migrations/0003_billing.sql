-- Billing: identities and linking, API keys, Stripe idempotency and subscription state,
-- and the PostgreSQL quota ledger used when Redis is unavailable.

-- An admin-granted floor for the tier (CLI `account set-tier`); `tier` is the effective tier,
-- max(base_tier, tier of the account's live subscriptions), recomputed on every change.
ALTER TABLE users ADD COLUMN base_tier text NOT NULL DEFAULT 'free'
    CHECK (base_tier IN ('free', 'pro', 'enterprise'));
-- A merged-away account keeps its row (foreign keys elsewhere stay valid) and points here.
ALTER TABLE users ADD COLUMN merged_into bigint REFERENCES users(id);

CREATE TABLE identities (
    identity    text PRIMARY KEY,            -- 'telegram:123', 'discord:456', 'web:a@b.c', 'web-anon:...'
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX identities_user_idx ON identities (user_id);

CREATE TABLE link_codes (
    code_hash   text PRIMARY KEY,            -- HMAC-SHA256 of the code: the code itself is never stored
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX link_codes_user_idx ON link_codes (user_id);

CREATE TABLE account_merges (
    id              bigserial PRIMARY KEY,
    kept_user_id    bigint NOT NULL REFERENCES users(id),
    merged_user_id  bigint NOT NULL REFERENCES users(id),
    kept_tier       text NOT NULL,
    merged_tier     text NOT NULL,
    identities      text[] NOT NULL,          -- identities moved onto the kept account
    via_identity    text,                     -- the identity that redeemed the link code
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '',
    prefix        text NOT NULL,              -- shown in listings; the key itself is shown once
    key_hash      text NOT NULL UNIQUE,       -- sha256 hex of the whole key
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);
CREATE INDEX api_keys_user_idx ON api_keys (user_id);

CREATE TABLE stripe_events (
    event_id      text PRIMARY KEY,           -- idempotency: one row per event ever applied
    type          text NOT NULL,
    created       timestamptz NOT NULL,
    outcome       text NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now()
);

-- Subscription state is kept as order-independent registers so events applied in any order
-- converge: the latest subscription snapshot (by event time, then event rank), the latest
-- paid / failed invoice times, the furthest period end, and a terminal `ended_at`.
ALTER TABLE subscriptions ADD COLUMN price_id text;
ALTER TABLE subscriptions ADD COLUMN snapshot_status text;
ALTER TABLE subscriptions ADD COLUMN snapshot_at timestamptz;
ALTER TABLE subscriptions ADD COLUMN snapshot_rank integer NOT NULL DEFAULT 0;
ALTER TABLE subscriptions ADD COLUMN snapshot_event text;
ALTER TABLE subscriptions ADD COLUMN last_paid_at timestamptz;
ALTER TABLE subscriptions ADD COLUMN last_failed_at timestamptz;
ALTER TABLE subscriptions ADD COLUMN ended_at timestamptz;

-- Quota counters: a mirror of the Redis windows (written behind) and the authority while
-- Redis is unreachable. `bucket` is 'acct:<id>' or 'ip:<address>'.
CREATE TABLE quota_counters (
    bucket        text NOT NULL,
    window_kind   text NOT NULL CHECK (window_kind IN ('minute', 'day')),
    window_start  timestamptz NOT NULL,
    count         integer NOT NULL CHECK (count >= 0),
    PRIMARY KEY (bucket, window_kind, window_start)
);
CREATE INDEX quota_counters_start_idx ON quota_counters (window_start);
