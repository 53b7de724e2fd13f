-- Retention (billing/retention.py): raw usage and query rows older than RETENTION_DAYS are
-- folded into these daily aggregates and deleted in batches by a periodic job; the aggregates
-- (and project_usage, already daily) are kept for RETENTION_DAILY_DAYS.

-- The batched delete walks usage_logs oldest first: without this index each batch would scan.
CREATE INDEX IF NOT EXISTS usage_logs_created_idx ON usage_logs (created_at);

CREATE TABLE IF NOT EXISTS usage_daily (
    day          date NOT NULL,
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel      text NOT NULL DEFAULT '',
    status       text NOT NULL,
    requests     integer NOT NULL,
    cache_hits   integer NOT NULL,
    tokens_used  bigint NOT NULL,
    cost_usd     numeric(14, 6) NOT NULL,
    PRIMARY KEY (day, user_id, channel, status)
);
CREATE INDEX IF NOT EXISTS usage_daily_user_idx ON usage_daily (user_id, day);

CREATE TABLE IF NOT EXISTS query_daily (
    day         date NOT NULL,
    project_id  text NOT NULL DEFAULT '',
    router      text NOT NULL DEFAULT '',
    status      text NOT NULL,
    queries     integer NOT NULL,
    PRIMARY KEY (day, project_id, router, status)
);
