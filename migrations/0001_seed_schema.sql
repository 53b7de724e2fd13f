-- The seed schema, corrected to valid PostgreSQL:
--  * inline INDEX clauses are separate CREATE INDEX statements;
--  * the seed's dangling reference to `projects` is resolved by creating `projects`
--    (one row per CoinGecko id: the coin index that project resolution refreshes);
--  * the five per-tool history tables (onchain_metrics, sentiment_scores, tokenomics_data,
--    team_data, partnerships) are one `analysis_snapshots` table: every tool result is a
--    typed JSON document with its evidence, so one append-only table keyed by
--    (project, module, fetched_at) serves the warm cache, the stale fallback, trends and
--    the daily report without five schemas drifting apart. Partnerships live inside the
--    team module's snapshots.

CREATE TABLE users (
    id                  bigserial PRIMARY KEY,
    email               text UNIQUE,
    tier                text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'pro', 'enterprise')),
    -- per-account limits (enterprise); NULL = the tier's default from settings
    daily_limit         integer CHECK (daily_limit > 0),
    minute_limit        integer CHECK (minute_limit > 0),
    stripe_customer_id  text UNIQUE,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE subscriptions (
    id                      bigserial PRIMARY KEY,
    user_id                 bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    stripe_subscription_id  text UNIQUE,
    stripe_customer_id      text,
    tier                    text NOT NULL CHECK (tier IN ('free', 'pro', 'enterprise')),
    status                  text NOT NULL,
    current_period_end      timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX subscriptions_user_idx ON subscriptions (user_id);

CREATE TABLE projects (
    id               text PRIMARY KEY,          -- CoinGecko id, e.g. 'uniswap'
    symbol           text NOT NULL,
    name             text NOT NULL,
    market_cap_rank  integer,
    aliases          text[] NOT NULL DEFAULT '{}',
    platforms        jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_symbol_idx ON projects (lower(symbol));

CREATE TABLE usage_logs (
    id           bigserial PRIMARY KEY,
    request_id   uuid NOT NULL UNIQUE,         -- idempotent writes: a retry never double-counts
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    identity     text,
    channel      text,
    project_id   text,
    tools        text[] NOT NULL DEFAULT '{}',
    tokens_used  integer NOT NULL DEFAULT 0,
    cost_usd     numeric(12, 6) NOT NULL DEFAULT 0,
    cache_hit    boolean NOT NULL DEFAULT false,
    latency_ms   integer,
    status       text NOT NULL DEFAULT 'ok',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_logs_user_created_idx ON usage_logs (user_id, created_at);

CREATE TABLE project_usage (
    project_id  text NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    day         date NOT NULL,
    requests    integer NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, day)
);
CREATE INDEX project_usage_day_idx ON project_usage (day);

CREATE TABLE query_logs (
    id               bigserial PRIMARY KEY,
    request_id       uuid,
    user_id          bigint REFERENCES users(id) ON DELETE SET NULL,
    conversation_id  text,
    question         text NOT NULL,
    project_id       text,
    tools            text[] NOT NULL DEFAULT '{}',
    router           text,
    status           text NOT NULL DEFAULT 'ok',
    error            text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX query_logs_created_idx ON query_logs (created_at);
CREATE INDEX query_logs_project_idx ON query_logs (project_id, created_at);

CREATE TABLE analysis_snapshots (
    id          bigserial PRIMARY KEY,
    project_id  text NOT NULL,
    module      text NOT NULL CHECK (module IN ('onchain', 'sentiment', 'tokenomics', 'team')),
    result      jsonb NOT NULL,
    fetched_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX analysis_snapshots_lookup_idx ON analysis_snapshots (project_id, module, fetched_at DESC);

CREATE TABLE daily_reports (
    id           bigserial PRIMARY KEY,
    report_date  date NOT NULL UNIQUE,
    content      jsonb NOT NULL,
    markdown     text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE report_subscribers (
    id           bigserial PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel      text NOT NULL CHECK (channel IN ('telegram', 'discord', 'email')),
    destination  text NOT NULL,                -- chat id, channel id or email address
    active       boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (channel, destination)
);
CREATE INDEX report_subscribers_user_idx ON report_subscribers (user_id);
