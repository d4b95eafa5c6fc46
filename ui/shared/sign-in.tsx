import { useState } from 'preact/hooks';
import { ApiError, call } from './api.js';
import { Field } from './field.js';
import { storeSession, type AgentSession } from './session.js';
import { strings } from './sign-in-strings.js';

/**
 * The agent sign-in form: the tenant's id, a username and a password
 * (`POST /auth/v3/agent/token`). The session is kept for the tab (sessionStorage, or the page's
 * memory where a framing site's browser denies storage) and handed to `onSignedIn`. `/auth/`
 * shows it alone; the agent pages show it in place, so a page framed by another site signs in
 * without leaving its document.
 */
export function SignIn({
  ccid: initialCcid,
  onSignedIn,
}: {
  ccid?: string | null;
  onSignedIn: (session: AgentSession) => void;
}) {
  const [ccid, setCcid] = useState(initialCcid ?? '');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [working, setWorking] = useState(false);
  const [problem, setProblem] = useState<string>();

  const submit = async () => {
    setWorking(true);
    setProblem(undefined);
    try {
      const answer = await call<AgentSession>('/auth/v3/agent/token', {
        method: 'POST',
        body: { ccid: ccid.trim(), username: username.trim(), password },
      });
      const session = { token: answer.token, expiresAt: answer.expiresAt };
      storeSession(session);
      onSignedIn(session);
    } catch (error) {
      setPassword('');
      if (error instanceof ApiError && error.status === 401) {
        setProblem(strings.invalid);
      } else if (error instanceof ApiError && error.status === 429) {
        setProblem(strings.throttled);
      } else if (error instanceof ApiError && error.code === 'NETWORK') {
        setProblem(strings.unreachable);
      } else {
        setProblem(strings.other((error as Error).message));
      }
    } finally {
      setWorking(false);
    }
  };

  return (
    <main class="page signin">
      <h1>{strings.heading}</h1>
      <form
        onSubmit={event => {
          event.preventDefault();
          void submit();
        }}
      >
        <Field
          label={strings.ccid}
          name="ccid"
          autocomplete="organization"
          required
          value={ccid}
          onValue={setCcid}
        />
        <Field
          label={strings.username}
          name="username"
          autocomplete="username"
          required
          value={username}
          onValue={setUsername}
        />
        <Field
          label={strings.password}
          name="password"
          password
          autocomplete="current-password"
          required
          value={password}
          onValue={setPassword}
        />
        {problem && (
          <p role="alert" class="error">
            {problem}
          </p>
        )}
        <button type="submit" disabled={working}>
          {working ? strings.working : strings.submit}
        </button>
      </form>
    </main>
  );
}
