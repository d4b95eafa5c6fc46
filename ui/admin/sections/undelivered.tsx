import { useState } from 'preact/hooks';
import { NoticeLine, Table, isoFromLocal, useLoad, useNotice, useOperator, when } from '../kit.js';
import { queueNames } from '../catalogue.js';
import { strings } from '../strings.js';

interface UndeliveredRecord {
  id: number;
  queue: string;
  tenantId: string | null;
  code: string;
  reason: string;
  attempts: number;
  lastAttemptAt: string;
  replayedAt: string | null;
  replays: number;
}

/**
 * Undelivered work (a cluster operator's): the tenant's records, newest first, with a replay of
 * one and a replay of every open record since a time (of one queue or all).
 */
export function Undelivered() {
  const { api, tenant } = useOperator();
  const [queue, setQueue] = useState('');
  const [before, setBefore] = useState<number>();
  const records = useLoad(() => {
    const query = new URLSearchParams({ limit: '50', tenant: tenant ?? '' });
    if (queue) query.set('queue', queue);
    if (before) query.set('before', String(before));
    return api<{ items: UndeliveredRecord[]; next: number | null }>(
      `/nexus/v3/undelivered?${query.toString()}`,
    );
  }, [tenant, queue, before]);
  const queues = useLoad(queueNames, []);
  const { notice, run } = useNotice();
  const [since, setSince] = useState('');
  const u = strings.undelivered;

  const replayOne = (record: UndeliveredRecord) =>
    run(async () => {
      await api(`/nexus/v3/undelivered/${record.id}/replay`, { method: 'POST', body: {} });
      records.reload();
    }, u.replayedOne(record.id));
  const replaySince = (event: Event) => {
    event.preventDefault();
    void run(
      async () => {
        const answer = await api<{ replayed: number; more: boolean }>(
          '/nexus/v3/undelivered/replay',
          {
            method: 'POST',
            body: { since: isoFromLocal(since), tenant, ...(queue ? { queue } : {}) },
          },
        );
        records.reload();
        return answer;
      },
      answer => strings.webhooks.replayed(answer.replayed, answer.more),
    );
  };

  return (
    <section aria-labelledby="undelivered-heading">
      <h2 id="undelivered-heading">{u.heading}</h2>
      <p class="muted">{u.intro}</p>
      <NoticeLine notice={notice} />
      <div class="bar">
        <label class="inline">
          {u.queue}
          <select
            value={queue}
            onChange={event => {
              setBefore(undefined);
              setQueue(event.currentTarget.value);
            }}
          >
            <option value="">{u.anyQueue}</option>
            {(queues.data ?? []).map(name => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
        <button type="button" class="secondary" onClick={records.reload}>
          {strings.refresh}
        </button>
      </div>
      <Table
        caption={u.heading}
        rows={records.data?.items}
        loaded={records}
        rowKey={row => row.id}
        columns={[
          { label: '#', cell: row => row.id },
          { label: u.queue, cell: row => row.queue },
          { label: u.code, cell: row => row.code },
          { label: u.reason, cell: row => row.reason },
          { label: u.attempts, cell: row => row.attempts },
          { label: u.last, cell: row => when(row.lastAttemptAt) },
          { label: u.replays, cell: row => row.replays },
          {
            label: strings.actions,
            cell: row => (
              <button
                type="button"
                onClick={() => void replayOne(row)}
                aria-label={u.replayRecord(row.id)}
              >
                {u.replay}
              </button>
            ),
          },
        ]}
      />
      {records.data?.next && (
        <button
          type="button"
          class="secondary"
          onClick={() => setBefore(records.data?.next ?? undefined)}
        >
          {u.older}
        </button>
      )}
      <form class="editor" onSubmit={replaySince}>
        <h3>{u.replaySince}</h3>
        <label>
          {u.replaySince}
          <input
            type="datetime-local"
            name="replay-since"
            required
            value={since}
            onInput={event => setSince(event.currentTarget.value)}
          />
        </label>
        <button type="submit">{u.replay}</button>
      </form>
    </section>
  );
}
