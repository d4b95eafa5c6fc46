-- The opt-out ledger: per tenant, sender (the channel's number) and customer number, whether the
-- customer opted out (STOP) or back in (START); every change kept.
CREATE TABLE sms_consent (
  tenant_id   text        NOT NULL,
  sender      text        NOT NULL,
  address     text        NOT NULL,
  opted_out   boolean     NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, sender, address)
);

CREATE TABLE sms_consent_changes (
  id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id   text        NOT NULL,
  sender      text        NOT NULL,
  address     text        NOT NULL,
  action      text        NOT NULL CHECK (action IN ('opt-out', 'opt-in')),
  source      text        NOT NULL,
  keyword     text,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_consent_changes_address_idx ON sms_consent_changes (tenant_id, address, id);
