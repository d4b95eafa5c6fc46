import { render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { Socket } from 'socket.io-client';
import { ApiError, call } from '../../shared/api.js';
import { connectAgentSocket, request } from '../../shared/agent-socket.js';
import {
  contiguousHead,
  merge,
  type HubEvent,
  type MessageData,
  type Participant,
  type SuggestionData,
  type TypingNotice,
} from '../../shared/events.js';
import { AgentPage } from '../../shared/agent-page.js';
import { Field } from '../../shared/field.js';
import { keepRenewed, type AgentSession } from '../../shared/session.js';
import '../../shared/style.css';
import { addressList } from '../comm/new-email.js';
import { EmailThread } from './email-thread.js';
import { strings } from './strings.js';
import { deriveState, type Me } from './state.js';

/**
 * `/ux/conv?iid=<interaction id>`: one conversation for an agent, as the agent desktop embeds
 * it. The transcript is read over HTTP, then followed on the agent socket from the last seq held
 * (after a reconnect or a reload, the hub sends exactly what was missed). Every action is a
 * public API call (docs/chat.md, docs/routing.md).
 */

interface Contact {
  id: string;
  firstName: string | null;
  lastName: string | null;
  nickname: string | null;
}
interface Interaction {
  id: string;
  mediaType: string;
  state: 'open' | 'done';
  created: string;
  lastSeq: number;
}
/** A queue the agent may transfer to (`GET /nexus/v3/agent/queues`). */
interface QueueChoice {
  name: string;
  waiting: number;
  agentsReady: number;
}
interface Conversation {
  interaction: Interaction;
  events: HubEvent[];
  contact: Contact | null;
  previousInteractions: Interaction[];
}

const PAGE = 500;

async function loadEvents(token: string, iid: string, after: number): Promise<Conversation> {
  const first = await call<Conversation>(
    `/nexus/v3/agent/interactions/${encodeURIComponent(iid)}?after=${after}&limit=${PAGE}`,
    { token },
  );
  let events = first.events;
  while (events.length > 0 && events.length % PAGE === 0) {
    const next = await call<Conversation>(
      `/nexus/v3/agent/interactions/${encodeURIComponent(iid)}?after=${events.at(-1)!.seq}&limit=${PAGE}`,
      { token },
    );
    if (next.events.length === 0) break;
    events = [...events, ...next.events];
  }
  return { ...first, events };
}

/** The communication panel, for the same tenant. */
const panelUrl = () => {
  const ccid = new URLSearchParams(location.search).get('ccid');
  return `/ux/comm${ccid ? `?ccid=${encodeURIComponent(ccid)}` : ''}`;
};

const contactName = (contact: Contact | null) =>
  contact?.nickname ||
  [contact?.firstName, contact?.lastName].filter(Boolean).join(' ') ||
  strings.customer;

function App({
  iid,
  session,
  onSignedOut,
}: {
  iid: string;
  session: AgentSession;
  onSignedOut: () => void;
}) {
  const tokenRef = useRef(session.token);
  const [me, setMe] = useState<Me>();
  const [conversation, setConversation] = useState<Conversation>();
  const [events, setEvents] = useState<HubEvent[]>([]);
  const eventsRef = useRef<HubEvent[]>([]);
  const [connected, setConnected] = useState(false);
  const [typing, setTyping] = useState<TypingNotice>();
  const [problem, setProblem] = useState<string>();
  const [draft, setDraft] = useState('');
  const [cc, setCc] = useState('');
  const [bcc, setBcc] = useState('');
  const [sending, setSending] = useState(false);
  const [transferQueue, setTransferQueue] = useState('');
  const [queues, setQueues] = useState<QueueChoice[]>();
  const [now, setNow] = useState(Date.now());
  const socketRef = useRef<Socket | undefined>(undefined);
  const composer = useRef<HTMLTextAreaElement>(null);
  const transcriptEnd = useRef<HTMLLIElement>(null);
  const lastTypingSent = useRef(0);
  const lastReadSent = useRef(0);

  const add = (incoming: HubEvent[]) => {
    const mine = incoming.filter(event => event.interactionId === iid);
    if (mine.length === 0) return;
    eventsRef.current = merge(eventsRef.current, mine);
    setEvents(eventsRef.current);
  };

  // The transcript first, then the socket from its head.
  useEffect(() => {
    let socket: Socket | undefined;
    const stopRenewing = keepRenewed(
      session,
      renewed => {
        tokenRef.current = renewed.token;
        if (socketRef.current?.connected) {
          request(socketRef.current, 'token', { token: renewed.token }).catch(() => undefined);
        }
      },
      onSignedOut,
    );
    void (async () => {
      try {
        const [who, loaded] = await Promise.all([
          call<Me>('/nexus/v3/agent/me', { token: tokenRef.current }),
          loadEvents(tokenRef.current, iid, 0),
        ]);
        setMe(who);
        setConversation(loaded);
        add(loaded.events);
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) return onSignedOut();
        setProblem(
          error instanceof ApiError && error.status === 404
            ? strings.notFound
            : String((error as Error).message),
        );
        return;
      }
      socket = connectAgentSocket({
        token: () => tokenRef.current,
        lastSeqs: () => ({ [iid]: contiguousHead(eventsRef.current) }),
        onEvent: event => {
          const head = contiguousHead(eventsRef.current);
          add([event]);
          // An event ahead of what is held: read the missing ones (the socket sends each once).
          if (event.interactionId === iid && event.seq > head + 1) {
            void loadEvents(tokenRef.current, iid, head).then(more => add(more.events));
          }
        },
        onTyping: notice => {
          if (notice.interactionId === iid && notice.participant.type !== 'agent') {
            setTyping(notice.typing ? notice : undefined);
          }
        },
        onState: (live, code) => {
          setConnected(live);
          if (code === 'NEXUS_ERR_UNAUTHORIZED') onSignedOut();
        },
      });
      socket.on('connect', () => {
        // Follow this conversation even before joining it (an offer, a colleague's chat).
        request(socket!, 'subscribe', {
          interactionId: iid,
          lastSeq: contiguousHead(eventsRef.current),
        }).catch(() => undefined);
      });
      socket.on('expired', onSignedOut);
      socketRef.current = socket;
    })();
    const clock = setInterval(() => setNow(Date.now()), 1_000);
    return () => {
      stopRenewing();
      clearInterval(clock);
      socket?.close();
    };
  }, [iid]);

  // A typing notice lasts what the hub says, unless renewed.
  useEffect(() => {
    if (!typing) return;
    const timer = setTimeout(() => setTyping(undefined), typing.expiresInMs);
    return () => clearTimeout(timer);
  }, [typing]);

  const state = useMemo(() => deriveState(events, me, now), [events, me, now]);

  // The transfer targets, read when the conversation becomes the agent's.
  useEffect(() => {
    if (!state.assignedToMe) return;
    call<{ items: QueueChoice[] }>('/nexus/v3/agent/queues', { token: tokenRef.current }).then(
      answer => setQueues(answer.items),
      () => setQueues([]),
    );
  }, [state.assignedToMe]);

  // Scroll to the newest; tell the customer what was read (customer messages only: a read
  // receipt is itself an event, acknowledging those would never end).
  useEffect(() => {
    transcriptEnd.current?.scrollIntoView({ block: 'end' });
    const lastCustomer = [...events]
      .reverse()
      .find(
        e =>
          e.type === 'message.created' &&
          (e.data as unknown as MessageData).from.type === 'customer',
      );
    if (
      lastCustomer &&
      state.joined &&
      lastCustomer.seq > lastReadSent.current &&
      document.visibilityState === 'visible'
    ) {
      lastReadSent.current = lastCustomer.seq;
      void act('read', { seq: lastCustomer.seq }).catch(() => undefined);
    }
  }, [events.length, state.joined]);

  const act = (action: string, body: unknown = {}) =>
    call(`/nexus/v3/agent/interactions/${encodeURIComponent(iid)}/${action}`, {
      method: 'POST',
      body,
      token: tokenRef.current,
    });

  const run = async (action: string, body?: unknown) => {
    setProblem(undefined);
    try {
      await act(action, body);
    } catch (error) {
      setProblem(strings.error((error as Error).message));
    }
  };

  const send = async () => {
    const text = draft.trim();
    if (!text || sending) return;
    setSending(true);
    setProblem(undefined);
    try {
      const copies = { cc: addressList(cc), bcc: addressList(bcc) };
      await act('messages', {
        text,
        clientMessageId: crypto.randomUUID(),
        ...(copies.cc.length > 0 ? { cc: copies.cc } : {}),
        ...(copies.bcc.length > 0 ? { bcc: copies.bcc } : {}),
      });
      setDraft('');
      setCc('');
      setBcc('');
      lastTypingSent.current = 0;
    } catch (error) {
      setProblem(strings.error((error as Error).message));
    } finally {
      setSending(false);
      composer.current?.focus();
    }
  };

  const onInput = (value: string) => {
    setDraft(value);
    if (value && Date.now() - lastTypingSent.current > 2_000 && !state.done) {
      lastTypingSent.current = Date.now();
      void act('typing', { typing: true }).catch(() => undefined);
    }
  };

  const insert = (text: string) => {
    setDraft(current => (current.trim() ? `${current.trimEnd()} ${text}` : text));
    composer.current?.focus();
  };

  if (problem && !conversation) {
    return (
      <main class="page">
        <p role="alert">{problem}</p>
      </main>
    );
  }
  if (!conversation || !me) {
    return (
      <main class="page">
        <p>{strings.loading}</p>
      </main>
    );
  }

  const customer = contactName(conversation.contact);
  const nameOf = (p: Participant) =>
    p.type === 'customer'
      ? p.nickname || customer
      : p.type === 'agent'
        ? p.id === me.id
          ? strings.you
          : p.nickname || p.id
        : p.type === 'bot'
          ? p.nickname || strings.bot
          : strings.system;
  const latestSuggestion = [...events].reverse().find(e => e.type === 'assist.suggestion');
  const suggestion = latestSuggestion?.data as unknown as SuggestionData | undefined;
  // Failures not followed up yet: no outbound message after them. Each can be sent again (its
  // text as a new message, once: the client message id names the failed one).
  const lastOutbound = [...events]
    .reverse()
    .find(
      e =>
        e.type === 'message.created' &&
        ['agent', 'bot'].includes((e.data as unknown as MessageData).from.type),
    );
  const undelivered = events
    .filter(e => e.type === 'interaction.undelivered' && e.seq > (lastOutbound?.seq ?? 0))
    .map(e => {
      const messageId = String(e.data.messageId);
      const failed = events.find(
        m =>
          m.type === 'message.created' &&
          (m.data as unknown as MessageData).message.id === messageId,
      );
      return { event: e, messageId, text: (failed?.data as MessageData | undefined)?.message.text };
    });
  const isEmail = conversation.interaction.mediaType === 'email';
  const sendAgain = (messageId: string, text: string) =>
    run('messages', { text, clientMessageId: `resend-${messageId}` });

  return (
    <main class="page conv">
      <header class="bar">
        <h1>{customer}</h1>
        <span class="badge" data-state={state.key}>
          {strings.state[state.key] ?? state.key}
        </span>
        {state.offerSecondsLeft !== undefined && (
          <span class="muted">{strings.offerEnds(state.offerSecondsLeft)}</span>
        )}
        <a href={panelUrl()}>{strings.panel}</a>
        <span class={connected ? 'live on' : 'live'} role="status">
          {connected ? strings.connected : strings.reconnecting}
        </span>
      </header>

      {undelivered.length > 0 && (
        <section class="alert" role="alert" aria-label={strings.undelivered}>
          <strong>{strings.undelivered}</strong>
          {undelivered.map(({ event, messageId, text }) => (
            <div key={event.seq} class="undelivered">
              <span>
                {strings.undeliveredDetail(String(event.data.code), String(event.data.reason))}
              </span>
              {text && !state.done && (
                <button type="button" onClick={() => void sendAgain(messageId, text)}>
                  {strings.sendAgain}
                </button>
              )}
            </div>
          ))}
        </section>
      )}

      <ol class="transcript" aria-live="polite" aria-label={strings.title} tabIndex={0}>
        {events.map(event => (
          <Line key={event.seq} event={event} nameOf={nameOf} meId={me.id} />
        ))}
        <li ref={transcriptEnd} class="end" aria-hidden="true" />
      </ol>
      {isEmail && (
        <EmailThread
          iid={iid}
          token={() => tokenRef.current}
          version={events.filter(e => e.type === 'message.created').length}
        />
      )}
      <p class="typing" aria-live="polite">
        {typing ? strings.typing(nameOf(typing.participant)) : ''}
      </p>

      {suggestion && suggestion.suggestions.length > 0 && (
        <section class="suggestions" aria-label={strings.suggestions}>
          <h2>{strings.suggestions}</h2>
          <p class="muted">
            {suggestion.intent &&
              strings.intent(suggestion.intent.name, suggestion.intent.confidence)}
            {suggestion.sentiment && ` · ${strings.sentiment(suggestion.sentiment.label)}`}
          </p>
          <ul>
            {suggestion.suggestions.map((s, index) => (
              <li key={index}>
                <span>
                  {s.type === 'article' && <em>{strings.article}: </em>}
                  {s.title ? `${s.title} — ` : ''}
                  {s.text}
                </span>
                <button type="button" onClick={() => insert(s.url ? `${s.text} ${s.url}` : s.text)}>
                  {strings.insert}
                </button>
              </li>
            ))}
          </ul>
        </section>
      )}

      {problem && (
        <p role="alert" class="error">
          {problem}
        </p>
      )}

      {state.done ? (
        <p class="muted">{strings.ended}</p>
      ) : (
        <form
          class="composer"
          onSubmit={event => {
            event.preventDefault();
            void send();
          }}
        >
          <label for="reply" class="visually-hidden">
            {strings.replyLabel}
          </label>
          <textarea
            id="reply"
            ref={composer}
            rows={3}
            value={draft}
            placeholder={strings.replyPlaceholder}
            onInput={event => onInput(event.currentTarget.value)}
            onKeyDown={event => {
              if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
                event.preventDefault();
                void send();
              }
            }}
          />
          {isEmail && (
            <div class="copies">
              <Field label={strings.cc} name="cc" value={cc} onValue={setCc} />
              <Field label={strings.bcc} name="bcc" value={bcc} onValue={setBcc} />
            </div>
          )}
          <button type="submit" disabled={sending || !draft.trim()}>
            {sending ? strings.sending : strings.send}
          </button>
        </form>
      )}

      {!state.done && (
        <nav class="actions" aria-label="Actions">
          {state.offeredToMe && (
            <>
              <button type="button" onClick={() => void run('accept')}>
                {strings.accept}
              </button>
              <button type="button" onClick={() => void run('reject')}>
                {strings.reject}
              </button>
            </>
          )}
          {!state.joined && !state.offeredToMe && (
            <button type="button" onClick={() => void run('join')}>
              {strings.join}
            </button>
          )}
          {state.assignedToMe && (
            <button type="button" onClick={() => void run('park')}>
              {strings.park}
            </button>
          )}
          {state.assignedToMe && (
            <form
              class="transfer"
              onSubmit={event => {
                event.preventDefault();
                if (transferQueue.trim()) void run('transfer', { queue: transferQueue.trim() });
              }}
            >
              <label for="transfer-queue" class="visually-hidden">
                {strings.transferTo}
              </label>
              <select
                id="transfer-queue"
                value={transferQueue}
                onChange={event => setTransferQueue(event.currentTarget.value)}
              >
                <option value="">{strings.transferTo}</option>
                {(queues ?? []).map(queue => (
                  <option key={queue.name} value={queue.name}>
                    {strings.queueChoice(queue.name, queue.waiting, queue.agentsReady)}
                  </option>
                ))}
              </select>
              <button type="submit" disabled={!transferQueue}>
                {strings.transfer}
              </button>
            </form>
          )}
          {state.joined && (
            <button type="button" onClick={() => void run('done')}>
              {strings.done}
            </button>
          )}
        </nav>
      )}

      <details class="previous">
        <summary>{strings.previous}</summary>
        {conversation.previousInteractions.length === 0 ? (
          <p class="muted">{strings.noPrevious}</p>
        ) : (
          <ul>
            {conversation.previousInteractions.map(previous => (
              <li key={previous.id}>
                <a href={`/ux/conv?iid=${encodeURIComponent(previous.id)}`}>
                  {new Date(previous.created).toLocaleString()} · {previous.mediaType} ·{' '}
                  {strings.state[previous.state] ?? previous.state}
                </a>
              </li>
            ))}
          </ul>
        )}
      </details>
    </main>
  );
}

function Line({
  event,
  nameOf,
  meId,
}: {
  event: HubEvent;
  nameOf: (p: Participant) => string;
  meId: string;
}) {
  const data = event.data;
  const who = (key = 'participant') => nameOf(data[key] as Participant);
  const agentName = () => {
    const agent = data.agent as { id: string; nickname: string };
    return agent.id === meId ? strings.you : agent.nickname;
  };
  switch (event.type) {
    case 'message.created': {
      const { message, from } = data as unknown as MessageData;
      return (
        <li
          class={`message from-${from.type}${from.id === meId ? ' mine' : ''}`}
          data-seq={event.seq}
        >
          <span class="who">{nameOf(from)}</span>
          <span class="text">{message.text}</span>
          <time dateTime={event.occurredAt}>{new Date(event.occurredAt).toLocaleTimeString()}</time>
        </li>
      );
    }
    case 'participant.joined':
      return <Note seq={event.seq}>{strings.joined(who())}</Note>;
    case 'participant.left':
      return <Note seq={event.seq}>{strings.left(who())}</Note>;
    case 'interaction.queued':
      return <Note seq={event.seq}>{strings.queued(String(data.queue))}</Note>;
    case 'interaction.assigned':
      return <Note seq={event.seq}>{strings.assignedTo(agentName())}</Note>;
    case 'interaction.parked':
      return <Note seq={event.seq}>{strings.parkedBy(agentName())}</Note>;
    case 'interaction.finished':
      return <Note seq={event.seq}>{strings.finishedBy(who('by'))}</Note>;
    case 'interaction.bot':
      return <Note seq={event.seq}>{strings.botStarted}</Note>;
    case 'interaction.handoff':
      return <Note seq={event.seq}>{strings.handoff(String(data.reason))}</Note>;
    case 'message.status':
      return <Note seq={event.seq}>{strings.status(String(data.status))}</Note>;
    case 'read':
      return (data.participant as Participant).type === 'customer' ? (
        <Note seq={event.seq}>{strings.readUpTo(who())}</Note>
      ) : null;
    default:
      return null;
  }
}

function Note({ seq, children }: { seq: number; children: preact.ComponentChildren }) {
  return (
    <li class="note" data-seq={seq}>
      {children}
    </li>
  );
}

const iid = new URLSearchParams(location.search).get('iid');
document.title = `${strings.title} · Nexus`;
render(
  iid ? (
    <AgentPage>
      {(session, onSignedOut) => <App iid={iid} session={session} onSignedOut={onSignedOut} />}
    </AgentPage>
  ) : (
    <main class="page">
      <p role="alert">{strings.noInteraction}</p>
    </main>
  ),
  document.getElementById('app')!,
);
