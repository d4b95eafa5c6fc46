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
import { permissionNames } from '../catalogue.js';
import { strings } from '../strings.js';

interface ApiKey {
  id: string;
  tenant: string;
  name: string;
  permissions: string[];
  enabled: boolean;
  revoked: boolean;
  expires: string | false;
  created: string;
}

/** The tenant's API keys: list, create (the key shown once), revoke. */
export function Keys() {
  const { api, tenant } = useOperator();
  const keys = useLoad(
    () => api<{ items: ApiKey[] }>(`/nexus/v3/apikeys?tenant=${seg(tenant ?? '')}&limit=500`),
    [tenant],
  );
  const catalogue = useLoad(permissionNames, []);
  const { notice, run } = useNotice();
  const [name, setName] = useState('');
  const [chosen, setChosen] = useState<string[]>([]);
  const [capacity, setCapacity] = useState('120');
  const [frequency, setFrequency] = useState('60');
  const [created, setCreated] = useState<{ name: string; key: string }>();
  const k = strings.keys;

  const create = async (event: Event) => {
    event.preventDefault();
    await run(async () => {
      const answer = await api<{ key: string; name: string }>('/nexus/v3/apikeys', {
        method: 'POST',
        body: {
          tenant,
          name: name.trim(),
          permissions: chosen,
          capacity: Number(capacity),
          frequency: Number(frequency),
        },
      });
      setCreated({ name: answer.name, key: answer.key });
      setName('');
      setChosen([]);
      keys.reload();
    });
  };
  const revoke = (key: ApiKey) => {
    if (!confirm(k.confirmRevoke(key.name))) return;
    void run(async () => {
      await api(`/nexus/v3/apikeys/${seg(key.id)}`, { method: 'DELETE' });
      keys.reload();
    }, strings.saved(key.name));
  };
  const state = (key: ApiKey) => (key.revoked ? k.revoked : key.enabled ? k.active : k.disabled);

  return (
    <section aria-labelledby="keys-heading">
      <h2 id="keys-heading">{k.heading}</h2>
      <NoticeLine notice={notice} />
      {created && (
        <ShownOnce
          intro={k.createdKey(created.name)}
          value={created.key}
          onDismiss={() => setCreated(undefined)}
        />
      )}
      <Table
        caption={k.heading}
        rows={keys.data?.items}
        loaded={keys}
        rowKey={row => row.id}
        columns={[
          { label: k.name, cell: row => row.name },
          { label: k.permissions, cell: row => row.permissions.join(', ') },
          { label: k.state, cell: state },
          { label: k.expires, cell: row => (row.expires ? when(row.expires) : k.never) },
          {
            label: strings.actions,
            cell: row =>
              row.revoked ? null : (
                <button
                  type="button"
                  class="danger"
                  onClick={() => revoke(row)}
                  aria-label={`${k.revoke} ${row.name}`}
                >
                  {k.revoke}
                </button>
              ),
          },
        ]}
      />
      <form class="editor" onSubmit={event => void create(event)}>
        <h3>{k.createHeading}</h3>
        <Field label={k.name} name="key-name" value={name} onValue={setName} required />
        <fieldset>
          <legend>{k.permissions}</legend>
          {(catalogue.data ?? []).map(permission => (
            <label class="check" key={permission}>
              <input
                type="checkbox"
                name="permission"
                value={permission}
                checked={chosen.includes(permission)}
                onChange={event =>
                  setChosen(list =>
                    event.currentTarget.checked
                      ? [...list, permission]
                      : list.filter(item => item !== permission),
                  )
                }
              />
              {permission}
            </label>
          ))}
        </fieldset>
        <div class="fields">
          <Field label={k.capacity} name="capacity" value={capacity} onValue={setCapacity} />
          <Field label={k.frequency} name="frequency" value={frequency} onValue={setFrequency} />
        </div>
        <button type="submit">{strings.create}</button>
      </form>
    </section>
  );
}
