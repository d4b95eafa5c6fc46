-- Bots (docs/ai-connector.md "Bots", docs/routing.md): a `botFirst` queue gives a new
-- conversation to the AI connector's bot (routing state `bot`) until the bot hands it off to the
-- queue's agents, or the queue's deadline does.

ALTER TABLE interactions DROP CONSTRAINT interactions_routing_state_check;
ALTER TABLE interactions ADD CONSTRAINT interactions_routing_state_check
  CHECK (routing_state IN ('bot', 'queued', 'offered', 'assigned', 'parked'));

-- When the bot got the conversation, and when the deadline hands it to agents if the bot has
-- not. A conversation is given to a bot once, when it starts: these stay as they were after the
-- handoff (the record of the bot's turn).
ALTER TABLE interactions
  ADD COLUMN bot_since      timestamptz,
  ADD COLUMN bot_handoff_at timestamptz;
-- The maintenance sweep's look for bots past their deadline.
CREATE INDEX interactions_bot_deadline_idx ON interactions (bot_handoff_at)
  WHERE routing_state = 'bot' AND state = 'open';

ALTER TABLE routing_queues
  ADD COLUMN bot_handoff_after_ms integer NOT NULL DEFAULT 300000
    CHECK (bot_handoff_after_ms BETWEEN 1000 AND 86400000),
  ADD COLUMN bot_name             text    NOT NULL DEFAULT 'Bot'
    CHECK (char_length(bot_name) BETWEEN 1 AND 64);

-- One bot answer to one customer message per connector: a repeated post finds its messages here
-- and stores nothing.
CREATE TABLE bot_turns (
  interaction_id uuid        NOT NULL REFERENCES interactions (id),
  reply_to       uuid        NOT NULL REFERENCES messages (id),
  connector      text        NOT NULL,
  tenant_id      text        NOT NULL,
  message_ids    uuid[]      NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (interaction_id, reply_to, connector)
);
