import { useState } from 'preact/hooks';
import { Field } from '../../shared/field.js';
import {
  NoticeLine,
  ShownOnce,
  Table,
  seg,
  useLoad,
  useNotice,
  useOperator,
  when,
} from '../kit.js';
import { strings } from '../strings.js';

export interface Tenant {
  id: string;
  name: string;
  type: string;
  enabled: boolean;
  created: string;
}

/** Every page of `GET /nexus/v3/provisioning/tenants`. */
export async function listTenants(api: ReturnType<typeof useOperator>['api']): Promise<Tenant[]> {
  const all: Tenant[] = [];
  let after: string | null = null;
  do {
    const query: string = after ? `&after=${seg(after)}` : '';
    const page: { items: Tenant[]; next: string | null } = await api(
      `/nexus/v3/provisioning/tenants?limit=500${query}`,
    );
    all.push(...page.items);
    after = page.next;
  } while (after);
  return all;
}

/**
 * Tenants: the list, a new tenant (its chat API key shown once), disable (a cluster operator's)
 * and enable again.
 */
export function Tenants({ onChanged }: { onChanged: (chosen?: string) => void }) {
  const { api } = useOperator();
  const tenants = useLoad(() => listTenants(api), []);
  const { notice, run } = useNotice();
  const [id, setId] = useState('');
  const [name, setName] = useState('');
  const [created, setCreated] = useState<{ id: string; xapikey: string }>();
  const t = strings.tenants;

  const create = async (event: Event) => {
    event.preventDefault();
    await run(async () => {
      const answer = await api<{ xapikey: string }>('/nexus/v3/provisioning/tenants', {
        method: 'POST',
        body: { id: id.trim(), name: name.trim() },
      });
      setCreated({ id: id.trim(), xapikey: answer.xapikey });
      setId('');
      setName('');
      tenants.reload();
      onChanged(id.trim());
    });
  };
  const setEnabled = (tenant: Tenant, enabled: boolean) =>
    run(async () => {
      if (enabled) {
        await api(`/nexus/v3/provisioning/tenants/${seg(tenant.id)}`, {
          method: 'PATCH',
          body: { enabled: true },
        });
      } else {
        await api(`/nexus/v3/provisioning/tenants/${seg(tenant.id)}`, { method: 'DELETE' });
      }
      tenants.reload();
    }, strings.saved(tenant.id));

  return (
    <section aria-labelledby="tenants-heading">
      <h2 id="tenants-heading">{t.heading}</h2>
      <NoticeLine notice={notice} />
      {created && (
        <ShownOnce
          intro={t.created1(created.id)}
          value={created.xapikey}
          onDismiss={() => setCreated(undefined)}
        />
      )}
      <Table
        caption={t.heading}
        rows={tenants.data}
        loaded={tenants}
        rowKey={row => row.id}
        columns={[
          { label: t.id, cell: row => row.id },
          { label: t.name, cell: row => row.name },
          { label: t.enabled, cell: row => (row.enabled ? strings.yes : strings.no) },
          { label: t.created, cell: row => when(row.created) },
          {
            label: strings.actions,
            cell: row => (
              <button
                type="button"
                class="secondary"
                onClick={() => void setEnabled(row, !row.enabled)}
                aria-label={`${row.enabled ? t.disable : t.enable} ${row.id}`}
              >
                {row.enabled ? t.disable : t.enable}
              </button>
            ),
          },
        ]}
      />
      <form class="editor" onSubmit={event => void create(event)}>
        <h3>{t.createHeading}</h3>
        <Field label={t.id} name="tenant-id" value={id} onValue={setId} required />
        <Field label={t.name} name="tenant-name" value={name} onValue={setName} required />
        <button type="submit">{strings.create}</button>
      </form>
    </section>
  );
}
