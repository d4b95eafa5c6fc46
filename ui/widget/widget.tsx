import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { io, type Socket } from 'socket.io-client';
import css from './widget.css?inline';
import { strings } from './strings.js';

/**
 * The customer chat widget. A site adds one tag:
 *
 *   <script src="https://<hub>/ux/widget.js" data-api-key="<the tenant's chat key>"
 *           data-endpoint="<chat endpoint>" async></script>
 *
 * It draws a launcher and a panel in a shadow root (its styles cannot leak in or out), starts a
 * chat with the widget REST API, then follows it on the `/chat` socket. The session (its client
 * token) is kept in the site's localStorage, so a reload, or a visit later, resumes the same chat
 * with its whole history until it ends (async chat, docs/chat.md).
 */

export interface WidgetOptions {
  apiKey: string;
  endpoint?: string;
  /** The hub's origin; by default the one this script came from. */
  hub?: string;
  /** Where the panel goes; by default a new element at the end of the body. */
  container?: HTMLElement;
}

interface Session {
  selfUri: string;
  clientToken: string;
  interactionId: string;
  participantId: string;
}

interface ChatEvent {
  seq: number;
  type: string;
  occurredAt: string;
  data: {
    message?: { id: string; text: string | null };
    from?: { type: string; id?: string; nickname: string | null };
    participant?: { type: string; id?: string; nickname: string | null };
    seq?: number;
  };
}

interface Envelope<T> {
  status: { code: number | string; message?: string };
  data: T;
}

const storageKey = (options: WidgetOptions) =>
  `nexus.chat.${options.hub}.${options.apiKey.slice(-12)}`;

async function rest<T>(url: string, headers: Record<string, string>, body?: unknown): Promise<T> {
  const res = await fetch(url, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { Accept: 'application/json', 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? null : JSON.stringify({ data: body }),
    credentials: 'omit',
  });
  const envelope = (await res.json().catch(() => undefined)) as Envelope<T> | undefined;
  if (!res.ok) throw new Error(envelope?.status.message ?? res.statusText);
  return envelope!.data;
}

function Widget({ options }: { options: WidgetOptions }) {
  // Open or closed, as the customer left it (a reload mid-chat keeps the panel open).
  const [open, setOpenState] = useState(
    () => localStorage.getItem(`${storageKey(options)}.open`) === '1',
  );
  const setOpen = (value: boolean) => {
    setOpenState(value);
    if (value) localStorage.setItem(`${storageKey(options)}.open`, '1');
    else localStorage.removeItem(`${storageKey(options)}.open`);
  };
  const [session, setSession] = useState<Session | undefined>(() => {
    try {
      return (
        (JSON.parse(localStorage.getItem(storageKey(options)) ?? 'null') as Session) ?? undefined
      );
    } catch {
      return undefined;
    }
  });
  const [events, setEvents] = useState<ChatEvent[]>([]);
  const eventsRef = useRef<ChatEvent[]>([]);
  const [ended, setEnded] = useState(false);
  const [connected, setConnected] = useState(false);
  const [typing, setTyping] = useState<string>();
  const [name, setName] = useState('');
  const [draft, setDraft] = useState('');
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string>();
  const socketRef = useRef<Socket | undefined>(undefined);
  const end = useRef<HTMLLIElement>(null);
  const lastTyping = useRef(0);
  const lastRead = useRef(0);

  const add = (incoming: ChatEvent[]) => {
    const bySeq = new Map(eventsRef.current.map(e => [e.seq, e]));
    for (const event of incoming) bySeq.set(event.seq, event);
    eventsRef.current = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    setEvents(eventsRef.current);
    if (incoming.some(e => e.type === 'interaction.finished')) setEnded(true);
  };
  const head = () => eventsRef.current.at(-1)?.seq ?? 0;

  // A session: its history, then its socket from the last seq held.
  useEffect(() => {
    if (!session) return;
    const headers = { 'x-nexus-client-key': session.clientToken };
    let socket: Socket | undefined;
    let stopped = false;
    void rest<{ messages: ChatEvent[]; state: string }>(
      `${session.selfUri}/messages?after=0`,
      headers,
    )
      .then(history => {
        if (stopped) return;
        add(history.messages);
        if (history.state === 'done') {
          setEnded(true);
          return;
        }
        socket = io(`${options.hub}/chat`, {
          path: '/nexus/v3/socket.io',
          transports: ['websocket'],
          auth: callback => callback({ token: session.clientToken, lastSeq: head() }),
        });
        for (const name of ['message', 'participant', 'read', 'ended', 'started']) {
          socket.on(name, (event: ChatEvent) => add([event]));
        }
        socket.on(
          'typing',
          (notice: { participant: { type: string; nickname: string | null }; typing: boolean }) => {
            if (notice.participant.type === 'customer') return;
            setTyping(notice.typing ? (notice.participant.nickname ?? strings.agent) : undefined);
          },
        );
        socket.on('connect', () => setConnected(true));
        socket.on('disconnect', () => setConnected(false));
        socketRef.current = socket;
      })
      .catch((error: Error) => {
        // A session the hub no longer knows: start afresh.
        localStorage.removeItem(storageKey(options));
        setSession(undefined);
        setProblem(strings.failed(error.message));
      });
    return () => {
      stopped = true;
      socket?.close();
      socketRef.current = undefined;
    };
  }, [session?.clientToken]);

  // Newest in view; the agent's messages marked read while the panel is open.
  useEffect(() => {
    end.current?.scrollIntoView({ block: 'end' });
    const last = [...events]
      .reverse()
      .find(e => e.type === 'message.created' && e.data.from?.type !== 'customer');
    if (open && last && last.seq > lastRead.current && socketRef.current?.connected) {
      lastRead.current = last.seq;
      socketRef.current.emit('read', { seq: last.seq }, () => undefined);
    }
  }, [events.length, open, connected]);

  const start = async () => {
    setBusy(true);
    setProblem(undefined);
    try {
      const started = await rest<Session & { id: string }>(
        `${options.hub}/nexus/v3/chat/sessions`,
        { 'x-api-key': options.apiKey },
        { nickname: name.trim(), ...(options.endpoint ? { endpoint: options.endpoint } : {}) },
      );
      const kept: Session = {
        selfUri: started.selfUri,
        clientToken: started.clientToken,
        interactionId: started.interactionId,
        participantId: started.participantId,
      };
      localStorage.setItem(storageKey(options), JSON.stringify(kept));
      eventsRef.current = [];
      setEvents([]);
      setEnded(false);
      setSession(kept);
    } catch (error) {
      setProblem(strings.failed((error as Error).message));
    } finally {
      setBusy(false);
    }
  };

  const send = () => {
    const text = draft.trim();
    const socket = socketRef.current;
    if (!text || !socket) return;
    setBusy(true);
    socket
      .timeout(10_000)
      .emit(
        'message',
        { text, clientMessageId: crypto.randomUUID() },
        (error: Error | null, ack?: { status: { code: number | string; message?: string } }) => {
          setBusy(false);
          if (error || ack?.status.code !== 0) {
            setProblem(strings.failed(error?.message ?? ack?.status.message ?? ''));
            return;
          }
          setDraft('');
          lastTyping.current = 0;
        },
      );
  };

  const finish = async () => {
    if (!session) return;
    await rest(`${session.selfUri}/end`, { 'x-nexus-client-key': session.clientToken }, {}).catch(
      () => undefined,
    );
    setEnded(true);
  };

  const restart = () => {
    localStorage.removeItem(storageKey(options));
    socketRef.current?.close();
    eventsRef.current = [];
    setEvents([]);
    setEnded(false);
    setSession(undefined);
  };

  if (!open) {
    return (
      <button type="button" class="launcher" onClick={() => setOpen(true)}>
        {strings.open}
      </button>
    );
  }
  const mine = (e: ChatEvent) => e.data.from?.type === 'customer';
  return (
    <section class="panel" role="dialog" aria-label={strings.title}>
      <header>
        <h2>{strings.title}</h2>
        {session && !ended && (
          <button type="button" onClick={() => void finish()}>
            {strings.end}
          </button>
        )}
        <button type="button" aria-label={strings.close} onClick={() => setOpen(false)}>
          ×
        </button>
      </header>
      {!session ? (
        <form
          class="start"
          onSubmit={event => {
            event.preventDefault();
            void start();
          }}
        >
          <label>
            {strings.nameLabel}
            <input required value={name} onInput={event => setName(event.currentTarget.value)} />
          </label>
          <button type="submit" disabled={busy || !name.trim()}>
            {busy ? strings.starting : strings.start}
          </button>
          {problem && (
            <p class="error" role="alert">
              {problem}
            </p>
          )}
        </form>
      ) : (
        <>
          <ol aria-live="polite" aria-label={strings.title} tabIndex={0}>
            {events.map(event => {
              if (event.type === 'message.created') {
                return (
                  <li
                    key={event.seq}
                    class={mine(event) ? 'message mine' : 'message'}
                    data-seq={event.seq}
                  >
                    <span class="who">
                      {mine(event)
                        ? strings.you
                        : (event.data.from?.nickname ??
                          (event.data.from?.type === 'bot' ? strings.bot : strings.agent))}
                    </span>
                    {event.data.message?.text}
                  </li>
                );
              }
              if (
                event.type === 'participant.joined' &&
                event.data.participant?.type !== 'customer'
              ) {
                return (
                  <li key={event.seq} class="note">
                    {strings.joined(event.data.participant?.nickname ?? strings.agent)}
                  </li>
                );
              }
              if (
                event.type === 'participant.left' &&
                event.data.participant?.type !== 'customer'
              ) {
                return (
                  <li key={event.seq} class="note">
                    {strings.left(event.data.participant?.nickname ?? strings.agent)}
                  </li>
                );
              }
              return null;
            })}
            <li ref={end} aria-hidden="true" />
          </ol>
          <p class="status" aria-live="polite">
            {ended
              ? strings.ended
              : typing
                ? strings.typing(typing)
                : connected
                  ? ''
                  : strings.offline}
          </p>
          {problem && (
            <p class="error" role="alert">
              {problem}
            </p>
          )}
          {ended ? (
            <form
              onSubmit={event => {
                event.preventDefault();
                restart();
              }}
            >
              <button type="submit">{strings.newChat}</button>
            </form>
          ) : (
            <form
              onSubmit={event => {
                event.preventDefault();
                send();
              }}
            >
              <label class="visually-hidden" for="nexus-chat-message">
                {strings.messageLabel}
              </label>
              <textarea
                id="nexus-chat-message"
                rows={2}
                value={draft}
                placeholder={strings.placeholder}
                onInput={event => {
                  setDraft(event.currentTarget.value);
                  if (Date.now() - lastTyping.current > 2_000 && socketRef.current?.connected) {
                    lastTyping.current = Date.now();
                    socketRef.current.emit('typing', { typing: true });
                  }
                }}
                onKeyDown={event => {
                  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
                    event.preventDefault();
                    send();
                  }
                }}
              />
              <button type="submit" disabled={busy || !draft.trim() || !connected}>
                {strings.send}
              </button>
            </form>
          )}
        </>
      )}
    </section>
  );
}

/** Mounts the widget; returns a function that removes it. */
export function mount(options: WidgetOptions): () => void {
  const hub = (options.hub ?? scriptOrigin ?? location.origin).replace(/\/$/, '');
  const host = options.container ?? document.body.appendChild(document.createElement('div'));
  const shadow = host.shadowRoot ?? host.attachShadow({ mode: 'open' });
  // A constructed style sheet: the styles stay in the shadow root, and a strict CSP on the site
  // (no inline styles) does not block them.
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(css);
  shadow.adoptedStyleSheets = [sheet];
  const root = document.createElement('div');
  shadow.appendChild(root);
  if (!options.apiKey) {
    render(<p class="error">{strings.misconfigured}</p>, root);
  } else {
    render(<Widget options={{ ...options, hub }} />, root);
  }
  return () => {
    render(null, root);
    if (!options.container) host.remove();
  };
}

const script = document.currentScript as HTMLScriptElement | null;
const scriptOrigin = script?.src ? new URL(script.src).origin : undefined;

// The one-tag form: the script's own data attributes. `data-demo` reads them from the page's URL
// instead (the hub's demo page, /ux/widget-demo).
if (script && (script.dataset.apiKey || script.dataset.demo !== undefined)) {
  const params = new URLSearchParams(location.search);
  const demo = script.dataset.demo !== undefined;
  const apiKey = (demo ? params.get('apikey') : script.dataset.apiKey) ?? '';
  const endpoint = (demo ? params.get('endpoint') : script.dataset.endpoint) ?? undefined;
  const start = () => mount({ apiKey, ...(endpoint ? { endpoint } : {}) });
  if (document.body) start();
  else document.addEventListener('DOMContentLoaded', start, { once: true });
}
