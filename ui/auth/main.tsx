import { render } from 'preact';
import '../shared/style.css';
import { SignIn } from '../shared/sign-in.js';
import { strings } from '../shared/sign-in-strings.js';
import { safeReturn } from '../shared/session.js';

/**
 * `/auth/`: the agent sign-in page. After signing in, the agent goes back to the page named by
 * `?return=` (a path of this origin only; the communication panel by default). `ccid` may come in
 * the URL (the desktop's `ccid=$ccId`); the password never does.
 */
const params = new URLSearchParams(location.search);
document.title = `${strings.title} · Nexus`;
render(
  <SignIn
    ccid={params.get('ccid')}
    onSignedIn={() => location.assign(safeReturn(params.get('return')))}
  />,
  document.getElementById('app')!,
);
