-- Watchlists and alerts (issue 13). One watchlist per account, shared by every channel.
CREATE TABLE watchlist_items (
    user_id     bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id  text NOT NULL,                -- CoinGecko id
    display     text NOT NULL,                -- 'Bitcoin (BTC)', as resolved when added
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, project_id)
);

-- An alert belongs to an account and is delivered where it was set (a Telegram chat, a
-- Discord DM or channel, an e-mail address). `armed` is false between a firing and the
-- condition clearing by the re-arm margin; `crossings` counts firings, so an event is unique
-- per (alert, crossing) and a second evaluator of the same minute cannot fire it again.
CREATE TABLE alerts (
    id                bigserial PRIMARY KEY,
    user_id           bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    project_id        text NOT NULL,
    display           text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('above', 'below', 'move', 'risk', 'sentiment')),
    level             double precision,        -- price in USD; move: percent; sentiment: points
    channel           text NOT NULL CHECK (channel IN ('telegram', 'discord', 'email')),
    destination       text NOT NULL,
    active            boolean NOT NULL DEFAULT true,   -- false once deleted (history is kept)
    armed             boolean NOT NULL DEFAULT true,
    crossings         integer NOT NULL DEFAULT 0,
    last_value        double precision,        -- last observed figure (price, %, score)
    last_observed_at  timestamptz,
    baseline          double precision,        -- sentiment: the score a swing is measured from
    known_flags       text[],                  -- risk: flags already seen with status yes
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_fired_at     timestamptz,
    deleted_at        timestamptz,
    CHECK ((kind = 'risk') = (level IS NULL))
);
CREATE INDEX alerts_user_idx ON alerts (user_id) WHERE active;
CREATE INDEX alerts_eval_idx ON alerts (project_id, kind) WHERE active;

CREATE TABLE alert_events (
    id           bigserial PRIMARY KEY,
    alert_id     bigint NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    crossing     integer NOT NULL,
    value        double precision,            -- the figure that fired it
    detail       text,                        -- risk: the new flags; sentiment: from -> to
    source       text NOT NULL,               -- 'CoinGecko', 'GoPlus', ...
    observed_at  timestamptz NOT NULL,        -- the figure's own time (source's timestamp)
    fired_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (alert_id, crossing)
);
