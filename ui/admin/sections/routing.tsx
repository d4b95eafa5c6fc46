import { useState } from 'preact/hooks';
import { Field } from '../../shared/field.js';
import {
  Area,
  NoticeLine,
  RowActions,
  Table,
  confirmDelete,
  parseJson,
  seg,
  useLoad,
  useNotice,
  useOperator,
} from '../kit.js';
import { strings } from '../strings.js';

interface Endpoint {
  name: string;
  description: string | null;
}

interface Queue {
  name: string;
  endpoints: string[];
  agents: string[];
  offerTimeoutMs: number;
  lastAgentWaitMs: number;
  botFirst: boolean;
  botHandoffAfterMs: number;
  stats: {
    waiting: number;
    oldestWaitMs: number | null;
    agentsReady: number;
    assigned: number;
    offered: number;
    accepted: number;
    abandoned: number;
  };
}

const QUEUE_EXAMPLE = JSON.stringify({ endpoints: ['default'], agents: [] }, null, 2);

const seconds = (ms: number | null) => (ms === null ? '—' : `${Math.round(ms / 1000)} s`);

/** The settings a stored queue is saved with again (its statistics are the hub's). */
function queueBody(queue: Queue): string {
  const { endpoints, agents, offerTimeoutMs, lastAgentWaitMs, botFirst, botHandoffAfterMs } = queue;
  return JSON.stringify(
    { endpoints, agents, offerTimeoutMs, lastAgentWaitMs, botFirst, botHandoffAfterMs },
    null,
    2,
  );
}

/** Chat endpoints, and routing queues with their live statistics. */
export function Routing() {
  const operator = useOperator();
  const { api, tenant } = operator;
  const ccid = seg(tenant ?? '');
  const endpoints = useLoad(
    () => api<{ items: Endpoint[] }>(`/nexus/v3/provisioning/endpoints/${ccid}`),
    [tenant],
  );
  const queues = useLoad(
    () => api<{ items: Queue[] }>(`/nexus/v3/provisioning/queues/${ccid}`),
    [tenant],
  );
  const { notice, run } = useNotice();
  const [endpoint, setEndpoint] = useState('');
  const [description, setDescription] = useState('');
  const [queue, setQueue] = useState('');
  const [body, setBody] = useState(QUEUE_EXAMPLE);
  const r = strings.routing;

  const saveEndpoint = async (event: Event) => {
    event.preventDefault();
    const name = endpoint.trim();
    const ok = await run(
      () =>
        api(`/nexus/v3/provisioning/endpoints/${ccid}/${seg(name)}`, {
          method: 'PUT',
          body: description.trim() ? { description: description.trim() } : {},
        }),
      strings.saved(name),
    );
    if (ok) endpoints.reload();
  };
  const saveQueue = async (event: Event) => {
    event.preventDefault();
    const name = queue.trim();
    const ok = await run(
      () =>
        api(`/nexus/v3/provisioning/queues/${ccid}/${seg(name)}`, {
          method: 'PUT',
          body: parseJson(body, r.body),
        }),
      strings.saved(name),
    );
    if (ok) queues.reload();
  };
  const remove = (kind: 'endpoints' | 'queues', name: string) =>
    confirmDelete(
      operator,
      run,
      name,
      `/nexus/v3/provisioning/${kind}/${ccid}/${seg(name)}`,
      kind === 'endpoints' ? endpoints : queues,
    );

  return (
    <section aria-labelledby="routing-heading">
      <h2 id="routing-heading">{strings.nav.routing}</h2>
      <NoticeLine notice={notice} />
      <h3>{r.endpoints}</h3>
      <Table
        caption={r.endpoints}
        rows={endpoints.data?.items}
        loaded={endpoints}
        rowKey={row => row.name}
        columns={[
          { label: r.name, cell: row => row.name },
          { label: r.description, cell: row => row.description ?? '—' },
          {
            label: strings.actions,
            cell: row => (
              <RowActions name={row.name} onDelete={() => remove('endpoints', row.name)} />
            ),
          },
        ]}
      />
      <form class="editor" onSubmit={event => void saveEndpoint(event)}>
        <h4>{r.createEndpoint}</h4>
        <div class="fields">
          <Field
            label={r.name}
            name="endpoint-name"
            value={endpoint}
            onValue={setEndpoint}
            required
          />
          <Field
            label={r.description}
            name="endpoint-description"
            value={description}
            onValue={setDescription}
          />
        </div>
        <button type="submit">{strings.save}</button>
      </form>
      <h3>
        {r.queues}{' '}
        <button type="button" class="secondary" onClick={queues.reload}>
          {strings.refresh}
        </button>
      </h3>
      <Table
        caption={r.queues}
        rows={queues.data?.items}
        loaded={queues}
        rowKey={row => row.name}
        columns={[
          { label: r.name, cell: row => row.name },
          { label: r.waiting, cell: row => row.stats.waiting },
          { label: r.oldest, cell: row => seconds(row.stats.oldestWaitMs) },
          { label: r.ready, cell: row => row.stats.agentsReady },
          { label: r.assigned, cell: row => row.stats.assigned },
          { label: r.offered, cell: row => row.stats.offered },
          { label: r.accepted, cell: row => row.stats.accepted },
          { label: r.abandoned, cell: row => row.stats.abandoned },
          {
            label: strings.actions,
            cell: row => (
              <RowActions
                name={row.name}
                onEdit={() => {
                  setQueue(row.name);
                  setBody(queueBody(row));
                }}
                onDelete={() => remove('queues', row.name)}
              />
            ),
          },
        ]}
      />
      <form class="editor" onSubmit={event => void saveQueue(event)}>
        <h4>{r.createQueue}</h4>
        <Field label={r.name} name="queue-name" value={queue} onValue={setQueue} required />
        <Area label={r.body} name="queue-body" value={body} onValue={setBody} />
        <button type="submit">{strings.save}</button>
      </form>
    </section>
  );
}
