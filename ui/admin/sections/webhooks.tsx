import { useState } from 'preact/hooks';
import { Field } from '../../shared/field.js';
import {
  NoticeLine,
  Table,
  isoFromLocal,
  seg,
  useLoad,
  useNotice,
  useOperator,
  when,
} from '../kit.js';
import { strings } from '../strings.js';

interface Target {
  name: string;
  eventTypes: string[] | null;
  enabled: boolean;
  disabledReason: string | null;
  failingSince: string | null;
  lastSuccessAt: string | null;
  pending: number;
  failed: number;
}

interface Delivery {
  id: number;
  target: string;
  eventType: string;
  state: 'pending' | 'delivered' | 'failed';
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  created: string;
}

interface Attempt {
  attempt: number;
  startedAt: string;
  durationMs: number | null;
  statusCode: number | null;
  outcome: string;
  error: string | null;
}

const TARGET_PREFIX = 'WebhookTransportTarget-';
const STATES = ['pending', 'delivered', 'failed'] as const;

/**
 * Webhook targets with their health (enable a disabled one, replay what it missed since T), a new
 * target (a `WebhookTransportTarget-<name>` service), and the delivery log with each delivery's
 * attempts and a replay of a failed one.
 */
export function Webhooks() {
  const { api, tenant } = useOperator();
  const ccid = seg(tenant ?? '');
  const targets = useLoad(
    () => api<{ items: Target[] }>(`/nexus/v3/webhooks/${ccid}/targets`),
    [tenant],
  );
  const [filterTarget, setFilterTarget] = useState('');
  const [filterState, setFilterState] = useState('');
  const [before, setBefore] = useState<number>();
  const deliveries = useLoad(() => {
    const query = new URLSearchParams({ limit: '50' });
    if (filterTarget) query.set('target', filterTarget);
    if (filterState) query.set('state', filterState);
    if (before) query.set('before', String(before));
    return api<{ items: Delivery[]; next: number | null }>(
      `/nexus/v3/webhooks/${ccid}/deliveries?${query.toString()}`,
    );
  }, [tenant, filterTarget, filterState, before]);
  const { notice, run } = useNotice();
  const [since, setSince] = useState<Record<string, string>>({});
  const [shown, setShown] = useState<{ id: number; attempts: Attempt[] }>();
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [secret, setSecret] = useState('');
  const [events, setEvents] = useState('');
  const w = strings.webhooks;

  const reloadAll = () => {
    targets.reload();
    deliveries.reload();
  };
  const enable = (target: Target) =>
    run(async () => {
      await api(`/nexus/v3/webhooks/${ccid}/targets/${seg(target.name)}/enable`, {
        method: 'POST',
        body: {},
      });
      reloadAll();
    }, w.enabledNow(target.name));
  const replaySince = (target: Target) =>
    run(
      async () => {
        const answer = await api<{ replayed: number; more: boolean }>(
          `/nexus/v3/webhooks/${ccid}/targets/${seg(target.name)}/replay`,
          { method: 'POST', body: { since: isoFromLocal(since[target.name] ?? '') } },
        );
        reloadAll();
        return answer;
      },
      answer => w.replayed(answer.replayed, answer.more),
    );
  const showAttempts = (delivery: Delivery) =>
    run(async () => {
      const detail = await api<{ attemptLog: Attempt[] }>(
        `/nexus/v3/webhooks/${ccid}/deliveries/${delivery.id}`,
      );
      setShown({ id: delivery.id, attempts: detail.attemptLog });
    });
  const replayOne = (delivery: Delivery) =>
    run(
      async () => {
        await api(`/nexus/v3/webhooks/${ccid}/deliveries/${delivery.id}/replay`, {
          method: 'POST',
          body: {},
        });
        reloadAll();
      },
      w.replayed(1, false),
    );
  const create = async (event: Event) => {
    event.preventDefault();
    const service = `${TARGET_PREFIX}${name.trim()}`;
    const list = events
      .split(',')
      .map(item => item.trim())
      .filter(Boolean);
    const ok = await run(
      () =>
        api(`/nexus/v3/provisioning/services/${ccid}/${seg(service)}`, {
          method: 'PUT',
          body: {
            url: url.trim(),
            data: list.length > 0 ? { events: list } : {},
            ...(secret ? { secret } : {}),
          },
        }),
      strings.saved(service),
    );
    if (!ok) return;
    setName('');
    setUrl('');
    setSecret('');
    setEvents('');
    reloadAll();
  };

  return (
    <section aria-labelledby="webhooks-heading">
      <h2 id="webhooks-heading">{w.targets}</h2>
      <NoticeLine notice={notice} />
      <Table
        caption={w.targets}
        rows={targets.data?.items}
        loaded={targets}
        rowKey={row => row.name}
        columns={[
          { label: w.name, cell: row => row.name },
          {
            label: w.state,
            cell: row => (row.enabled ? w.enabled : w.disabled(row.disabledReason)),
          },
          { label: w.failingSince, cell: row => when(row.failingSince) },
          { label: w.lastSuccess, cell: row => when(row.lastSuccessAt) },
          { label: w.pending, cell: row => row.pending },
          { label: w.failed, cell: row => row.failed },
          {
            label: strings.actions,
            cell: row => (
              <span class="bar">
                {!row.enabled && (
                  <button
                    type="button"
                    onClick={() => void enable(row)}
                    aria-label={`${w.enable} ${row.name}`}
                  >
                    {w.enable}
                  </button>
                )}
                <label class="inline">
                  <span class="visually-hidden">{`${w.replaySince} (${row.name})`}</span>
                  <input
                    type="datetime-local"
                    value={since[row.name] ?? ''}
                    onInput={event => {
                      const value = event.currentTarget.value;
                      setSince(all => ({ ...all, [row.name]: value }));
                    }}
                  />
                </label>
                <button
                  type="button"
                  class="secondary"
                  onClick={() => void replaySince(row)}
                  aria-label={`${w.replaySince}: ${row.name}`}
                >
                  {w.replay}
                </button>
              </span>
            ),
          },
        ]}
      />
      <form class="editor" onSubmit={event => void create(event)}>
        <h3>{w.createHeading}</h3>
        <div class="fields">
          <Field label={w.targetName} name="target-name" value={name} onValue={setName} required />
          <Field label={w.url} name="target-url" value={url} onValue={setUrl} required />
        </div>
        <div class="fields">
          <Field
            label={w.secret}
            name="target-secret"
            value={secret}
            onValue={setSecret}
            password
            autocomplete="off"
          />
          <Field label={w.events} name="target-events" value={events} onValue={setEvents} />
        </div>
        <button type="submit">{strings.create}</button>
      </form>

      <h3 id="deliveries-heading">{w.deliveries}</h3>
      <div class="bar" role="group" aria-labelledby="deliveries-heading">
        <label class="inline">
          {w.filterTarget}
          <select
            value={filterTarget}
            onChange={event => {
              setBefore(undefined);
              setFilterTarget(event.currentTarget.value);
            }}
          >
            <option value="">{w.any}</option>
            {(targets.data?.items ?? []).map(target => (
              <option key={target.name} value={target.name}>
                {target.name}
              </option>
            ))}
          </select>
        </label>
        <label class="inline">
          {w.filterState}
          <select
            value={filterState}
            onChange={event => {
              setBefore(undefined);
              setFilterState(event.currentTarget.value);
            }}
          >
            <option value="">{w.any}</option>
            {STATES.map(state => (
              <option key={state} value={state}>
                {state}
              </option>
            ))}
          </select>
        </label>
        <button type="button" class="secondary" onClick={reloadAll}>
          {strings.refresh}
        </button>
      </div>
      <Table
        caption={w.deliveries}
        rows={deliveries.data?.items}
        loaded={deliveries}
        rowKey={row => row.id}
        columns={[
          { label: '#', cell: row => row.id },
          { label: w.name, cell: row => row.target },
          { label: w.event, cell: row => row.eventType },
          { label: w.state, cell: row => row.state },
          { label: w.attempts, cell: row => row.attempts },
          {
            label: w.lastStatus,
            cell: row => row.lastStatus ?? row.lastError ?? '—',
          },
          { label: w.created, cell: row => when(row.created) },
          {
            label: strings.actions,
            cell: row => (
              <span class="bar">
                <button
                  type="button"
                  class="secondary"
                  onClick={() => void showAttempts(row)}
                  aria-label={`${w.show}: ${row.id}`}
                >
                  {w.show}
                </button>
                {row.state === 'failed' && (
                  <button
                    type="button"
                    onClick={() => void replayOne(row)}
                    aria-label={w.replayDelivery(row.id)}
                  >
                    {w.replay}
                  </button>
                )}
              </span>
            ),
          },
        ]}
      />
      {deliveries.data?.next && (
        <button
          type="button"
          class="secondary"
          onClick={() => setBefore(deliveries.data?.next ?? undefined)}
        >
          {w.older}
        </button>
      )}
      {shown && (
        <div class="editor" role="region" aria-label={w.attemptLog(shown.id)}>
          <h4>{w.attemptLog(shown.id)}</h4>
          <Table
            caption={w.attemptLog(shown.id)}
            rows={shown.attempts}
            loaded={{ error: undefined, loading: false }}
            rowKey={row => row.attempt}
            columns={[
              { label: '#', cell: row => row.attempt },
              { label: w.started, cell: row => when(row.startedAt) },
              { label: w.lastStatus, cell: row => row.statusCode ?? '—' },
              { label: w.state, cell: row => row.outcome },
              { label: w.duration, cell: row => row.durationMs ?? '—' },
              { label: w.error, cell: row => row.error ?? '—' },
            ]}
          />
          <button type="button" class="secondary" onClick={() => setShown(undefined)}>
            {strings.close}
          </button>
        </div>
      )}
    </section>
  );
}
