-- Media uploaded by third-party gateways for RichMedia messages, referenced as
-- genesys://nexus/<id>.
CREATE TABLE media (
  id          uuid        PRIMARY KEY,
  tenant_id   text        NOT NULL,
  channel_id  text        NOT NULL,
  filename    text        NOT NULL,
  mimetype    text        NOT NULL,
  length      integer     NOT NULL,
  content     bytea       NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_tenant_idx ON media (tenant_id, created_at);
