import { useState } from 'preact/hooks';
import { Field } from '../../shared/field.js';
import { NoticeLine, Table, seg, useLoad, useNotice, useOperator, when } from '../kit.js';
import { strings } from '../strings.js';

interface Agent {
  id: string;
  username: string;
  name: string;
  enabled: boolean;
  created: string;
}

/**
 * The tenant's agents: list, create (with a password they sign in with at /auth/), set a
 * password, disable and enable. The agent routes take the tenant from `x-ccid` for a cluster
 * operator; a tenant operator's token names its own.
 */
export function Agents() {
  const { api, tenant } = useOperator();
  const headers = { 'x-ccid': tenant ?? '' };
  const agents = useLoad(() => api<{ items: Agent[] }>('/nexus/v3/agents', { headers }), [tenant]);
  const { notice, run } = useNotice();
  const [username, setUsername] = useState('');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [passwordFor, setPasswordFor] = useState<Agent>();
  const [newPassword, setNewPassword] = useState('');
  const a = strings.agents;

  const create = async (event: Event) => {
    event.preventDefault();
    const ok = await run(
      () =>
        api('/nexus/v3/agents', {
          method: 'POST',
          headers,
          body: {
            username: username.trim(),
            name: name.trim(),
            ...(password ? { password } : {}),
          },
        }),
      strings.saved(username.trim()),
    );
    if (!ok) return;
    setUsername('');
    setName('');
    setPassword('');
    agents.reload();
  };
  const setEnabled = (agent: Agent, enabled: boolean) =>
    run(async () => {
      await api(`/nexus/v3/agents/${seg(agent.id)}`, {
        method: 'PATCH',
        headers,
        body: { enabled },
      });
      agents.reload();
    }, strings.saved(agent.username));
  const savePassword = async (event: Event) => {
    event.preventDefault();
    if (!passwordFor) return;
    const ok = await run(
      () =>
        api(`/nexus/v3/agents/${seg(passwordFor.id)}/password`, {
          method: 'PUT',
          headers,
          body: { password: newPassword },
        }),
      a.passwordSet(passwordFor.username),
    );
    if (!ok) return;
    setPasswordFor(undefined);
    setNewPassword('');
  };

  return (
    <section aria-labelledby="agents-heading">
      <h2 id="agents-heading">{a.heading}</h2>
      <NoticeLine notice={notice} />
      <Table
        caption={a.heading}
        rows={agents.data?.items}
        loaded={agents}
        rowKey={row => row.id}
        columns={[
          { label: a.username, cell: row => row.username },
          { label: a.name, cell: row => row.name },
          { label: a.enabled, cell: row => (row.enabled ? strings.yes : strings.no) },
          { label: strings.tenants.created, cell: row => when(row.created) },
          {
            label: strings.actions,
            cell: row => (
              <span class="bar">
                <button
                  type="button"
                  class="secondary"
                  onClick={() => setPasswordFor(row)}
                  aria-label={`${a.setPassword}: ${row.username}`}
                >
                  {a.setPassword}
                </button>
                <button
                  type="button"
                  class="secondary"
                  onClick={() => void setEnabled(row, !row.enabled)}
                  aria-label={`${row.enabled ? a.disable : a.enable} ${row.username}`}
                >
                  {row.enabled ? a.disable : a.enable}
                </button>
              </span>
            ),
          },
        ]}
      />
      {passwordFor && (
        <form class="editor" onSubmit={event => void savePassword(event)}>
          <h3>{a.newPassword(passwordFor.username)}</h3>
          <Field
            label={a.password}
            name="new-password"
            value={newPassword}
            onValue={setNewPassword}
            password
            autocomplete="new-password"
            required
          />
          <span class="bar">
            <button type="submit">{strings.save}</button>
            <button type="button" class="secondary" onClick={() => setPasswordFor(undefined)}>
              {strings.cancel}
            </button>
          </span>
        </form>
      )}
      <form class="editor" onSubmit={event => void create(event)}>
        <h3>{a.createHeading}</h3>
        <div class="fields">
          <Field
            label={a.username}
            name="agent-username"
            value={username}
            onValue={setUsername}
            required
          />
          <Field label={a.name} name="agent-name" value={name} onValue={setName} required />
        </div>
        <Field
          label={a.password}
          name="agent-password"
          value={password}
          onValue={setPassword}
          password
          autocomplete="new-password"
        />
        <button type="submit">{strings.create}</button>
      </form>
    </section>
  );
}
