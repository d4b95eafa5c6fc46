import { useState } from 'preact/hooks';
import { Field } from '../../shared/field.js';
import { NoticeLine, Table, seg, useLoad, useNotice, useOperator, when } from '../kit.js';
import { strings } from '../strings.js';

interface SmsConsent {
  address: string;
  senders: { sender: string; optedOut: boolean; updated: string }[];
  changes: { sender: string; action: string; source: string; keyword: string | null; at: string }[];
}

interface Suppression {
  address: string;
  reason: string;
  since: string;
}

/**
 * Consent: a customer number's SMS opt-out state per sender with its history (opt-outs come from
 * the customer's STOP and the aggregators), and the tenant's suppressed email addresses, which an
 * operator adds and lifts.
 */
export function Consent() {
  const { api, tenant } = useOperator();
  const ccid = seg(tenant ?? '');
  const { notice, run } = useNotice();
  const [number, setNumber] = useState('');
  const [sms, setSms] = useState<SmsConsent | null>();
  const suppressions = useLoad(
    () => api<{ items: Suppression[] }>(`/nexus/v3/email/suppressions/${ccid}?limit=500`),
    [tenant],
  );
  const [address, setAddress] = useState('');
  const c = strings.consent;

  const lookUp = (event: Event) => {
    event.preventDefault();
    void run(async () => {
      setSms(undefined);
      const ledger = await api<SmsConsent>(
        `/nexus/v3/sms/consent/${ccid}?address=${encodeURIComponent(number.trim())}`,
      );
      // The hub answers a number it never saw with empty lists: it has never opted out.
      setSms(ledger.senders.length === 0 && ledger.changes.length === 0 ? null : ledger);
    });
  };
  const suppress = async (event: Event) => {
    event.preventDefault();
    const target = address.trim();
    const ok = await run(
      () => api(`/nexus/v3/email/suppressions/${ccid}/${seg(target)}`, { method: 'PUT', body: {} }),
      c.suppressed(target),
    );
    if (!ok) return;
    setAddress('');
    suppressions.reload();
  };
  const lift = (row: Suppression) =>
    run(async () => {
      await api(`/nexus/v3/email/suppressions/${ccid}/${seg(row.address)}`, { method: 'DELETE' });
      suppressions.reload();
    }, c.lifted(row.address));

  return (
    <section aria-labelledby="consent-heading">
      <h2 id="consent-heading">{strings.nav.consent}</h2>
      <NoticeLine notice={notice} />
      <h3>{c.sms}</h3>
      <form class="editor" onSubmit={lookUp}>
        <div class="fields">
          <Field
            label={c.number}
            name="consent-number"
            value={number}
            onValue={setNumber}
            tel
            required
          />
          <button type="submit">{c.look}</button>
        </div>
      </form>
      {sms === null && <p class="muted">{c.unknownNumber}</p>}
      {sms && (
        <>
          <Table
            caption={`${c.sms}: ${sms.address}`}
            rows={sms.senders}
            loaded={{ error: undefined, loading: false }}
            rowKey={row => row.sender}
            columns={[
              { label: c.sender, cell: row => row.sender },
              { label: c.optedOut, cell: row => (row.optedOut ? strings.yes : strings.no) },
              { label: c.at, cell: row => when(row.updated) },
            ]}
          />
          <h4>{c.history}</h4>
          <Table
            caption={c.history}
            rows={sms.changes}
            loaded={{ error: undefined, loading: false }}
            rowKey={row => `${row.sender}-${row.at}-${row.action}`}
            columns={[
              { label: c.sender, cell: row => row.sender },
              {
                label: c.action,
                cell: row => row.action + (row.keyword ? ` (${row.keyword})` : ''),
              },
              { label: c.source, cell: row => row.source },
              { label: c.at, cell: row => when(row.at) },
            ]}
          />
        </>
      )}
      <h3>{c.email}</h3>
      <Table
        caption={c.email}
        rows={suppressions.data?.items}
        loaded={suppressions}
        rowKey={row => row.address}
        columns={[
          { label: c.address, cell: row => row.address },
          { label: c.reason, cell: row => row.reason },
          { label: c.since, cell: row => when(row.since) },
          {
            label: strings.actions,
            cell: row => (
              <button
                type="button"
                class="secondary"
                onClick={() => void lift(row)}
                aria-label={`${c.lift} ${row.address}`}
              >
                {c.lift}
              </button>
            ),
          },
        ]}
      />
      <form class="editor" onSubmit={event => void suppress(event)}>
        <div class="fields">
          <Field
            label={c.address}
            name="suppress-address"
            value={address}
            onValue={setAddress}
            required
          />
          <button type="submit">{c.suppress}</button>
        </div>
      </form>
    </section>
  );
}
