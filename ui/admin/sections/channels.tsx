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

interface Channel {
  name: string;
  channelId: string;
  channelType: string;
  endpoint: string | null;
  provider: string | null;
  interactionSubtype: string | null;
  interactionType: string | null;
  media: string | null;
  cxcOnly: boolean;
}

const EXAMPLE = JSON.stringify({ channelId: '+18005550100', endpoint: 'default' }, null, 2);

/** The body a stored channel is saved with again: its settings without the record's fields. */
function bodyOf(channel: Channel): string {
  const {
    channelId,
    channelType,
    endpoint,
    provider,
    interactionSubtype,
    interactionType,
    media,
    cxcOnly,
  } = channel;
  const body = {
    channelId,
    channelType,
    endpoint,
    provider,
    interactionSubtype,
    interactionType,
    media,
    cxcOnly,
  };
  return JSON.stringify(
    Object.fromEntries(Object.entries(body).filter(([, value]) => value !== null)),
    null,
    2,
  );
}

/**
 * The tenant's channels (`chat.<name>` numbers and Async channels, `cxc.<name>` email domains):
 * list, create or replace with the guide's body, delete.
 */
export function Channels() {
  const operator = useOperator();
  const { api, tenant } = operator;
  const base = `/nexus/v3/provisioning/channels/${seg(tenant ?? '')}`;
  const channels = useLoad(() => api<{ items: Channel[] }>(base), [tenant]);
  const { notice, run } = useNotice();
  const [name, setName] = useState('');
  const [body, setBody] = useState(EXAMPLE);
  const c = strings.channels;

  const save = async (event: Event) => {
    event.preventDefault();
    const target = name.trim();
    const ok = await run(
      () => api(`${base}/${seg(target)}`, { method: 'PUT', body: parseJson(body, c.body) }),
      strings.saved(target),
    );
    if (ok) channels.reload();
  };
  const remove = (channel: Channel) =>
    confirmDelete(operator, run, channel.name, `${base}/${seg(channel.name)}`, channels);

  return (
    <section aria-labelledby="channels-heading">
      <h2 id="channels-heading">{c.heading}</h2>
      <NoticeLine notice={notice} />
      <Table
        caption={c.heading}
        rows={channels.data?.items}
        loaded={channels}
        rowKey={row => row.name}
        columns={[
          { label: c.name, cell: row => row.name },
          { label: c.channelId, cell: row => row.channelId },
          { label: c.type, cell: row => row.channelType },
          { label: c.provider, cell: row => row.provider ?? '—' },
          { label: c.endpoint, cell: row => row.endpoint ?? '—' },
          {
            label: strings.actions,
            cell: row => (
              <RowActions
                name={row.name}
                onEdit={() => {
                  setName(row.name);
                  setBody(bodyOf(row));
                }}
                onDelete={() => remove(row)}
              />
            ),
          },
        ]}
      />
      <form class="editor" onSubmit={event => void save(event)}>
        <h3>{c.createHeading}</h3>
        <Field label={c.name} name="channel-name" value={name} onValue={setName} required />
        <Area label={c.body} name="channel-body" value={body} onValue={setBody} />
        <button type="submit">{strings.save}</button>
      </form>
    </section>
  );
}
