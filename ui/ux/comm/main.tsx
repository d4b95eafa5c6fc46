import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Socket } from 'socket.io-client';
import { ApiError, call } from '../../shared/api.js';
import { connectAgentSocket, request } from '../../shared/agent-socket.js';
import { AgentPage } from '../../shared/agent-page.js';
import { Field } from '../../shared/field.js';
import type { HubEvent } from '../../shared/events.js';
import { keepRenewed, type AgentSession } from '../../shared/session.js';
import '../../shared/style.css';
import { NewEmail } from './new-email.js';
import { strings } from './strings.js';

/**
 * `/ux/comm?ccid=<tenant>`: the agent's communication panel, as the desktop embeds it beside the
 * conversation tab. Presence and capacity, the offers waiting for the agent (with their timer),
 * the agent's open conversations, the undelivered ones, and a new outbound SMS or email, consent
 * checked by the hub before anything is stored. Every action is a public API call.
 */

interface Me {
  id: string;
  name: string;
}
interface Presence {
  ready: boolean;
  capacity: number;
  load: number;
}
interface Interaction {
  id: string;
  mediaType: string;
  created: string;
  joined?: boolean;
  code?: string;
  reason?: string;
}

const convUrl = (iid: string) => {
  const ccid = new URLSearchParams(location.search).get('ccid');
  return `/ux/conv?iid=${encodeURIComponent(iid)}${ccid ? `&ccid=${encodeURIComponent(ccid)}` : ''}`;
};

function Panel({ session, onSignedOut }: { session: AgentSession; onSignedOut: () => void }) {
  const token = useRef(session.token);
  const [me, setMe] = useState<Me>();
  const [presence, setPresence] = useState<Presence>();
  const [capacity, setCapacity] = useState('');
  const [offers, setOffers] = useState<HubEvent[]>([]);
  const [mine, setMine] = useState<Interaction[]>([]);
  const [undelivered, setUndelivered] = useState<Interaction[]>([]);
  const [connected, setConnected] = useState(false);
  const [problem, setProblem] = useState<string>();
  const [now, setNow] = useState(Date.now());
  const [to, setTo] = useState('');
  const [from, setFrom] = useState('');
  const [text, setText] = useState('');
  const [sending, setSending] = useState(false);
  const [refusal, setRefusal] = useState<string>();

  const get = <T,>(path: string) => call<T>(path, { token: token.current });
  const post = <T,>(path: string, body: unknown = {}) =>
    call<T>(path, { method: 'POST', body, token: token.current });

  const refresh = async () => {
    const [open, failed, pending, state] = await Promise.all([
      get<{ items: Interaction[] }>('/nexus/v3/agent/interactions?limit=500'),
      get<{ items: Interaction[] }>('/nexus/v3/agent/undelivered'),
      get<{ items: HubEvent[] }>('/nexus/v3/agent/offers'),
      get<Presence>('/nexus/v3/agent/presence'),
    ]);
    setPresence(state);
    setMine(open.items.filter(item => item.joined));
    setUndelivered(failed.items);
    // The hub's list is the truth: an offer answered elsewhere, or withdrawn, leaves it.
    setOffers(pending.items);
    return state;
  };

  useEffect(() => {
    let socket: Socket | undefined;
    let timer: ReturnType<typeof setTimeout> | undefined;
    // Events come in bursts (an offer, then its assignment): one read for a burst.
    const later = () => {
      clearTimeout(timer);
      timer = setTimeout(() => void refresh().catch(() => undefined), 150);
    };
    const stopRenewing = keepRenewed(
      session,
      renewed => {
        token.current = renewed.token;
        if (socket?.connected) {
          request(socket, 'token', { token: renewed.token }).catch(() => undefined);
        }
      },
      onSignedOut,
    );
    void (async () => {
      try {
        setMe(await get<Me>('/nexus/v3/agent/me'));
        const state = await refresh();
        setCapacity(String(state.capacity));
      } catch (error) {
        if (error instanceof ApiError && error.status === 401) return onSignedOut();
        setProblem(strings.error((error as Error).message));
        return;
      }
      socket = connectAgentSocket({
        token: () => token.current,
        lastSeqs: () => ({}),
        onEvent: event => {
          if (event.type === 'interaction.offered') {
            setOffers(current => [
              ...current.filter(offer => offer.interactionId !== event.interactionId),
              event,
            ]);
          }
          later();
        },
        onTyping: () => undefined,
        onState: (live, code) => {
          setConnected(live);
          if (code === 'NEXUS_ERR_UNAUTHORIZED') onSignedOut();
        },
      });
      socket.on('expired', onSignedOut);
    })();
    const clock = setInterval(() => setNow(Date.now()), 1_000);
    return () => {
      stopRenewing();
      clearInterval(clock);
      clearTimeout(timer);
      socket?.close();
    };
  }, []);

  const savePresence = async (ready: boolean) => {
    setProblem(undefined);
    try {
      const value = Number(capacity);
      const state = await post<Presence>('/nexus/v3/agent/presence', {
        ready,
        ...(Number.isInteger(value) ? { capacity: value } : {}),
      });
      setPresence(state);
      setCapacity(String(state.capacity));
    } catch (error) {
      setProblem(strings.error((error as Error).message));
    }
  };

  const answer = async (offer: HubEvent, accept: boolean) => {
    setProblem(undefined);
    setOffers(current => current.filter(o => o.interactionId !== offer.interactionId));
    try {
      await post(
        `/nexus/v3/agent/interactions/${offer.interactionId}/${accept ? 'accept' : 'reject'}`,
      );
      if (accept) location.assign(convUrl(offer.interactionId));
    } catch (error) {
      setProblem(
        error instanceof ApiError && error.code === 'NEXUS_ERR_OFFER_INVALID'
          ? strings.gone
          : strings.error((error as Error).message),
      );
    }
  };

  const sendSms = async () => {
    setSending(true);
    setRefusal(undefined);
    try {
      const started = await post<{ interactionId: string }>('/nexus/v3/agent/outbound/sms', {
        to: to.trim(),
        text,
        ...(from.trim() ? { from: from.trim() } : {}),
        clientMessageId: crypto.randomUUID(),
      });
      location.assign(convUrl(started.interactionId));
    } catch (error) {
      setRefusal(strings.refused((error as Error).message));
    } finally {
      setSending(false);
    }
  };

  if (!me || !presence) {
    return (
      <main class="page">
        <p role={problem ? 'alert' : undefined}>{problem ?? strings.loading}</p>
      </main>
    );
  }
  const open = offers.filter(offer => Date.parse(String(offer.data.expiresAt)) > now);
  return (
    <main class="page comm">
      <header class="bar">
        <h1>{strings.title}</h1>
        <span class="muted">{strings.you(me.name)}</span>
        <span class={connected ? 'live on' : 'live'} role="status">
          {connected ? strings.connected : strings.reconnecting}
        </span>
      </header>
      {problem && (
        <p role="alert" class="error">
          {problem}
        </p>
      )}

      <section aria-labelledby="presence-heading" class="panel">
        <h2 id="presence-heading">{strings.presence}</h2>
        <p>
          <span class="badge" data-state={presence.ready ? 'ready' : 'not-ready'}>
            {presence.ready ? strings.ready : strings.notReady}
          </span>{' '}
          <span class="muted">{strings.load(presence.load, presence.capacity)}</span>
        </p>
        <div class="row">
          <label for="capacity">{strings.capacity}</label>
          <input
            id="capacity"
            type="number"
            min={0}
            max={100}
            value={capacity}
            onInput={event => setCapacity(event.currentTarget.value)}
          />
          <button type="button" onClick={() => void savePresence(true)}>
            {strings.ready}
          </button>
          <button type="button" onClick={() => void savePresence(false)}>
            {strings.notReady}
          </button>
        </div>
      </section>

      <section aria-labelledby="offers-heading" class="panel">
        <h2 id="offers-heading">{strings.offers}</h2>
        {open.length === 0 ? (
          <p class="muted">{strings.noOffers}</p>
        ) : (
          <ul class="list">
            {open.map(offer => (
              <li key={offer.interactionId} class="offer">
                <span>{strings.offer(String(offer.data.queue))}</span>
                <span class="muted">
                  {strings.secondsLeft(
                    Math.max(0, Math.ceil((Date.parse(String(offer.data.expiresAt)) - now) / 1000)),
                  )}
                </span>
                <button type="button" onClick={() => void answer(offer, true)}>
                  {strings.accept}
                </button>
                <button type="button" onClick={() => void answer(offer, false)}>
                  {strings.reject}
                </button>
              </li>
            ))}
          </ul>
        )}
      </section>

      <section aria-labelledby="mine-heading" class="panel">
        <h2 id="mine-heading">{strings.mine}</h2>
        {mine.length === 0 ? (
          <p class="muted">{strings.noneMine}</p>
        ) : (
          <ul class="list">
            {mine.map(item => (
              <li key={item.id}>
                <a href={convUrl(item.id)}>
                  {item.mediaType} · {strings.started(new Date(item.created).toLocaleString())}
                </a>
              </li>
            ))}
          </ul>
        )}
      </section>

      <section aria-labelledby="outbound-heading" class="panel">
        <h2 id="outbound-heading">{strings.outbound}</h2>
        <form
          class="outbound"
          onSubmit={event => {
            event.preventDefault();
            void sendSms();
          }}
        >
          <Field label={strings.to} name="to" tel required value={to} onValue={setTo} />
          <Field label={strings.from} name="from" value={from} onValue={setFrom} />
          <label>
            {strings.text}
            <textarea
              name="text"
              rows={2}
              required
              value={text}
              onInput={event => setText(event.currentTarget.value)}
            />
          </label>
          {refusal && (
            <p role="alert" class="error">
              {refusal}
            </p>
          )}
          <button type="submit" disabled={sending || !to.trim() || !text.trim()}>
            {sending ? strings.sending : strings.send}
          </button>
        </form>
      </section>

      <NewEmail post={post} open={iid => location.assign(convUrl(iid))} />

      <section aria-labelledby="undelivered-heading" class="panel">
        <h2 id="undelivered-heading">{strings.undelivered}</h2>
        {undelivered.length === 0 ? (
          <p class="muted">{strings.noneUndelivered}</p>
        ) : (
          <ul class="list">
            {undelivered.map(item => (
              <li key={item.id}>
                <a href={convUrl(item.id)}>{item.mediaType}</a>{' '}
                <span class="error">
                  {strings.undeliveredLine(item.code ?? '', item.reason ?? '')}
                </span>
              </li>
            ))}
          </ul>
        )}
      </section>
    </main>
  );
}

document.title = `${strings.title} · Nexus`;
render(
  <AgentPage>
    {(session, onSignedOut) => <Panel session={session} onSignedOut={onSignedOut} />}
  </AgentPage>,
  document.getElementById('app')!,
);
