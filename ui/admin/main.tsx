import { render } from 'preact';
import { useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, call } from '../shared/api.js';
import { Field } from '../shared/field.js';
import '../shared/style.css';
import './admin.css';
import { OperatorContext, describeError, type Operator } from './kit.js';
import { Agents } from './sections/agents.js';
import { Channels } from './sections/channels.js';
import { Consent } from './sections/consent.js';
import { Keys } from './sections/keys.js';
import { Routing } from './sections/routing.js';
import { Services } from './sections/services.js';
import { Tenants, listTenants, type Tenant } from './sections/tenants.js';
import { Undelivered } from './sections/undelivered.js';
import { Webhooks } from './sections/webhooks.js';
import { strings } from './strings.js';

/**
 * `/admin/`: the operator console. It signs in with the admin token or an operator JWT (kept in
 * this tab's sessionStorage, never in a URL or a cookie) and does everything through the public
 * API with it; a token that may not list tenants (an agent's, an API key) does not get in. The
 * sections are addressed by the URL's hash (`#keys`), the tenant looked at is kept in the tab.
 */

const TOKEN_KEY = 'nexus.operator-token';
const TENANT_KEY = 'nexus.operator-tenant';

const SECTIONS = {
  tenants: { label: strings.nav.tenants, perTenant: false },
  keys: { label: strings.nav.keys, perTenant: true },
  services: { label: strings.nav.services, perTenant: true },
  channels: { label: strings.nav.channels, perTenant: true },
  routing: { label: strings.nav.routing, perTenant: true },
  agents: { label: strings.nav.agents, perTenant: true },
  webhooks: { label: strings.nav.webhooks, perTenant: true },
  undelivered: { label: strings.nav.undelivered, perTenant: true },
  consent: { label: strings.nav.consent, perTenant: true },
} as const;
type SectionName = keyof typeof SECTIONS;

const sectionOf = (hash: string): SectionName => {
  const name = hash.replace(/^#/, '');
  return name in SECTIONS ? (name as SectionName) : 'tenants';
};

function stored(key: string): string | undefined {
  try {
    return sessionStorage.getItem(key) ?? undefined;
  } catch {
    return undefined;
  }
}
function store(key: string, value: string | undefined): void {
  try {
    if (value === undefined) sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch {
    // storage denied: the console works for this page's lifetime
  }
}

/** Whether `token` is an operator's: it may list tenants. Throws the reason it is not. */
async function checkOperator(token: string): Promise<void> {
  try {
    await call('/nexus/v3/provisioning/tenants?limit=1', { token });
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) throw new Error(strings.signIn.invalid);
    if (error instanceof ApiError && error.status === 403) {
      throw new Error(strings.signIn.notOperator);
    }
    throw error;
  }
}

function SignIn({ onSignedIn }: { onSignedIn: (token: string) => void }) {
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string>();
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setProblem(undefined);
    try {
      await checkOperator(token.trim());
      onSignedIn(token.trim());
    } catch (error) {
      setProblem(describeError(error));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>{strings.signIn.heading}</h1>
      <p class="muted">{strings.signIn.intro}</p>
      <form onSubmit={event => void submit(event)}>
        <Field
          label={strings.signIn.token}
          name="token"
          value={token}
          onValue={setToken}
          password
          autocomplete="off"
          required
        />
        <button type="submit" disabled={busy}>
          {busy ? strings.signIn.checking : strings.signIn.submit}
        </button>
        {problem && (
          <p class="alert" role="alert">
            {problem}
          </p>
        )}
      </form>
    </main>
  );
}

function Console({ token, onSignedOut }: { token: string; onSignedOut: (why?: string) => void }) {
  const [section, setSection] = useState<SectionName>(sectionOf(location.hash));
  const [tenants, setTenants] = useState<Tenant[]>([]);
  const [tenant, setTenant] = useState<string | undefined>(stored(TENANT_KEY));

  const operator = useMemo<Operator>(
    () => ({
      tenant,
      api: async <T,>(path: string, options = {}) => {
        try {
          return await call<T>(path, { ...options, token });
        } catch (error) {
          // The token expired or was revoked: back to the sign-in.
          if (error instanceof ApiError && error.status === 401) onSignedOut(strings.expired);
          throw error;
        }
      },
    }),
    [token, tenant, onSignedOut],
  );

  const loadTenants = (chosen?: string) =>
    listTenants(operator.api).then(
      list => {
        setTenants(list);
        const keep = chosen ?? tenant;
        const next = list.some(item => item.id === keep) ? keep : list[0]?.id;
        setTenant(next);
        store(TENANT_KEY, next);
      },
      () => undefined,
    );
  useEffect(() => {
    void loadTenants();
    const onHash = () => setSection(sectionOf(location.hash));
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
    // Once per sign-in.
  }, [token]);

  const choose = (id: string) => {
    setTenant(id);
    store(TENANT_KEY, id);
  };
  const { perTenant } = SECTIONS[section];

  return (
    <OperatorContext.Provider value={operator}>
      <div class="console">
        <header class="bar top">
          <h1>{strings.title}</h1>
          <span class="inline">
            <label for="tenant-select">{strings.tenant}</label>
            <select
              id="tenant-select"
              value={tenant ?? ''}
              onChange={event => choose(event.currentTarget.value)}
            >
              {tenants.map(item => (
                <option key={item.id} value={item.id}>
                  {item.id === item.name ? item.id : `${item.id} (${item.name})`}
                </option>
              ))}
            </select>
          </span>
          <button type="button" class="secondary signout" onClick={() => onSignedOut()}>
            {strings.signOut}
          </button>
        </header>
        <nav aria-label={strings.nav.label}>
          <ul>
            {(Object.keys(SECTIONS) as SectionName[]).map(name => (
              <li key={name}>
                <a href={`#${name}`} aria-current={name === section ? 'page' : undefined}>
                  {SECTIONS[name].label}
                </a>
              </li>
            ))}
            <li>
              <a href="/admin/queues/" target="_blank" rel="noopener">
                {strings.nav.dashboard}
              </a>
              <span class="muted hint">{strings.nav.dashboardHint}</span>
            </li>
          </ul>
        </nav>
        <main>
          {section === 'tenants' ? (
            <Tenants onChanged={chosen => void loadTenants(chosen)} />
          ) : perTenant && !tenant ? (
            <p class="muted">{strings.noTenant}</p>
          ) : (
            <PerTenant section={section} key={`${section}-${tenant}`} />
          )}
        </main>
      </div>
    </OperatorContext.Provider>
  );
}

function PerTenant({ section }: { section: Exclude<SectionName, 'tenants'> }) {
  switch (section) {
    case 'keys':
      return <Keys />;
    case 'services':
      return <Services />;
    case 'channels':
      return <Channels />;
    case 'routing':
      return <Routing />;
    case 'agents':
      return <Agents />;
    case 'webhooks':
      return <Webhooks />;
    case 'undelivered':
      return <Undelivered />;
    case 'consent':
      return <Consent />;
  }
}

function App() {
  const [token, setToken] = useState(stored(TOKEN_KEY));
  const [why, setWhy] = useState<string>();
  const signIn = (value: string) => {
    store(TOKEN_KEY, value);
    setWhy(undefined);
    setToken(value);
  };
  const signOut = useMemo(
    () => (reason?: string) => {
      store(TOKEN_KEY, undefined);
      setWhy(reason);
      setToken(undefined);
    },
    [],
  );
  if (!token) {
    return (
      <>
        {why && (
          <p class="alert" role="alert">
            {why}
          </p>
        )}
        <SignIn onSignedIn={signIn} />
      </>
    );
  }
  return <Console token={token} onSignedOut={signOut} />;
}

document.title = strings.title;
render(<App />, document.getElementById('app')!);
