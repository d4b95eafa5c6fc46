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
  when,
} from '../kit.js';
import { strings } from '../strings.js';

interface Service {
  name: string;
  url: string | null;
  data: Record<string, unknown>;
  /** Which secret fields are set; the values never leave the hub. */
  secret: Record<string, unknown> | null;
  updated: string;
}

/** The secret fields a service has set (`{apikey: true}`, nested for a webhook's two secrets). */
function secretFields(secret: Service['secret']): string {
  if (!secret || typeof secret !== 'object') return '—';
  const names = Object.entries(secret)
    .filter(([, set]) => set !== false && set !== null)
    .map(([name]) => name);
  return names.length > 0 ? names.join(', ') : '—';
}

/**
 * The tenant's services. Secrets are write-only: the list says which secret fields are set, an
 * edit leaves the stored secret alone unless a new one is typed (`PATCH`), and a new service is
 * saved whole (`PUT`).
 */
export function Services() {
  const operator = useOperator();
  const { api, tenant } = operator;
  const base = `/nexus/v3/provisioning/services/${seg(tenant ?? '')}`;
  const services = useLoad(() => api<{ items: Service[] }>(base), [tenant]);
  const { notice, run } = useNotice();
  const [editing, setEditing] = useState<string>();
  const [name, setName] = useState('');
  const [url, setUrl] = useState('');
  const [data, setData] = useState('{}');
  const [secret, setSecret] = useState('');
  const s = strings.services;

  const edit = (service: Service) => {
    setEditing(service.name);
    setName(service.name);
    setUrl(service.url ?? '');
    setData(JSON.stringify(service.data, null, 2));
    setSecret('');
  };
  const reset = () => {
    setEditing(undefined);
    setName('');
    setUrl('');
    setData('{}');
    setSecret('');
  };
  const save = async (event: Event) => {
    event.preventDefault();
    const target = editing ?? name.trim();
    const ok = await run(async () => {
      const body: Record<string, unknown> = { data: parseJson(data, s.data) };
      if (url.trim()) body.url = url.trim();
      // A JSON object, or a bare string (a webhook target's signing secret).
      const typed = secret.trim();
      if (typed) body.secret = typed.startsWith('{') ? parseJson(typed, s.secret) : typed;
      await api(`${base}/${seg(target)}`, { method: editing ? 'PATCH' : 'PUT', body });
    }, strings.saved(target));
    if (ok) {
      reset();
      services.reload();
    }
  };
  const remove = (service: Service) =>
    confirmDelete(operator, run, service.name, `${base}/${seg(service.name)}`, services);

  return (
    <section aria-labelledby="services-heading">
      <h2 id="services-heading">{s.heading}</h2>
      <NoticeLine notice={notice} />
      <Table
        caption={s.heading}
        rows={services.data?.items}
        loaded={services}
        rowKey={row => row.name}
        columns={[
          { label: s.name, cell: row => row.name },
          { label: s.url, cell: row => row.url ?? '—' },
          { label: s.secretSet, cell: row => secretFields(row.secret) },
          { label: s.updated, cell: row => when(row.updated) },
          {
            label: strings.actions,
            cell: row => (
              <RowActions name={row.name} onEdit={() => edit(row)} onDelete={() => remove(row)} />
            ),
          },
        ]}
      />
      <form class="editor" onSubmit={event => void save(event)}>
        <h3>{editing ? s.editHeading(editing) : s.createHeading}</h3>
        {!editing && (
          <Field label={s.name} name="service-name" value={name} onValue={setName} required />
        )}
        <Field label={s.url} name="service-url" value={url} onValue={setUrl} />
        <Area label={s.data} name="service-data" value={data} onValue={setData} />
        <Area
          label={s.secret}
          name="service-secret"
          value={secret}
          onValue={setSecret}
          rows={3}
          hint={editing ? s.secretKeep : undefined}
        />
        <span class="bar">
          <button type="submit">{strings.save}</button>
          {editing && (
            <button type="button" class="secondary" onClick={reset}>
              {strings.cancel}
            </button>
          )}
        </span>
      </form>
    </section>
  );
}
