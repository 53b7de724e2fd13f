-- The daily report (one row per date, rebuilt in place) and the delivery ledger.
ALTER TABLE daily_reports
    ADD COLUMN chart_png            bytea,
    ADD COLUMN builds               integer NOT NULL DEFAULT 1,
    ADD COLUMN updated_at           timestamptz NOT NULL DEFAULT now(),
    -- set once by the first broadcast; a rebuild after it keeps the ledger (nobody re-sent)
    ADD COLUMN delivery_started_at  timestamptz;

-- One row per (message, destination): a report date or (later) an alert event, and a
-- Telegram chat, Discord channel or e-mail address. The unique key is what makes delivery
-- effectively-once: fan-out inserts with ON CONFLICT DO NOTHING, a send claims the row
-- (pending -> sending) before calling the platform and records the outcome after.
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('report', 'alert')),
    ref             text NOT NULL,            -- report date (YYYY-MM-DD) or alert event id
    subscriber_id   bigint REFERENCES report_subscribers(id) ON DELETE SET NULL,
    channel         text NOT NULL CHECK (channel IN ('telegram', 'discord', 'email')),
    destination     text NOT NULL,
    edition         text NOT NULL DEFAULT 'full' CHECK (edition IN ('headline', 'full')),
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown')),
    -- a message may take several platform calls (Telegram: chart photo, then text);
    -- parts_done counts those that surely arrived, so a retry sends only the rest
    parts_done      integer NOT NULL DEFAULT 0,
    attempts        integer NOT NULL DEFAULT 0,
    claimed_by_job  bigint,                   -- procrastinate job that set `sending`
    not_before      timestamptz,              -- retry-later: not before this time
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    UNIQUE (kind, ref, channel, destination)
);
CREATE INDEX deliveries_open_idx ON deliveries (kind, ref, channel) WHERE state IN ('pending', 'sending');
CREATE INDEX deliveries_sent_at_idx ON deliveries (channel, sent_at) WHERE state = 'sent';

-- SendGrid event webhook: each event once (sg_event_id), what it did.
CREATE TABLE email_events (
    sg_event_id  text PRIMARY KEY,
    email        text NOT NULL,
    event        text NOT NULL,
    reason       text,
    received_at  timestamptz NOT NULL DEFAULT now()
);
