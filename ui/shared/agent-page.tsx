import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { clearSession, obtainSession, type AgentSession } from './session.js';
import { SignIn } from './sign-in.js';
import { strings } from './sign-in-strings.js';

/**
 * What every agent page starts with: the agent's session (kept for the tab, or handed in by the
 * embedding desktop), else the sign-in form in place; then the page itself, given the session
 * and what to call when the hub refuses it (the form comes back).
 */
export function AgentPage({
  children,
}: {
  children: (session: AgentSession, onSignedOut: () => void) => ComponentChildren;
}) {
  const ccid = new URLSearchParams(location.search).get('ccid');
  // undefined: still looking; null: none, sign in.
  const [session, setSession] = useState<AgentSession | null | undefined>(undefined);
  const [signIns, setSignIns] = useState(0);
  useEffect(() => {
    void obtainSession().then(found => setSession(found ?? null));
  }, []);
  if (session === undefined) {
    return (
      <main class="page">
        <p>{strings.looking}</p>
      </main>
    );
  }
  if (session === null) {
    return (
      <SignIn
        ccid={ccid}
        onSignedIn={signedIn => {
          setSignIns(n => n + 1);
          setSession(signedIn);
        }}
      />
    );
  }
  return (
    <div key={signIns}>
      {children(session, () => {
        clearSession();
        setSession(null);
      })}
    </div>
  );
}
