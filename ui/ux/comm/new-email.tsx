import { useState } from 'preact/hooks';
import { Field } from '../../shared/field.js';
import { strings } from './strings.js';

/** Comma- or semicolon-separated addresses, trimmed, empty ones dropped. */
export const addressList = (value: string) =>
  value
    .split(/[,;]/)
    .map(item => item.trim())
    .filter(Boolean);

/**
 * A new email to a contact (`POST /nexus/v3/agent/outbound/email`): the hub refuses an address on
 * the tenant's suppression list before storing anything, and the form shows why. On success the
 * agent goes to the new conversation.
 */
export function NewEmail({
  post,
  open,
}: {
  post: <T>(path: string, body: unknown) => Promise<T>;
  open: (interactionId: string) => void;
}) {
  const [to, setTo] = useState('');
  const [cc, setCc] = useState('');
  const [subject, setSubject] = useState('');
  const [text, setText] = useState('');
  const [sending, setSending] = useState(false);
  const [refusal, setRefusal] = useState<string>();

  const send = async (event: Event) => {
    event.preventDefault();
    setSending(true);
    setRefusal(undefined);
    try {
      const copies = addressList(cc);
      const started = await post<{ interactionId: string }>('/nexus/v3/agent/outbound/email', {
        to: to.trim(),
        subject: subject.trim(),
        text,
        ...(copies.length > 0 ? { cc: copies } : {}),
        clientMessageId: crypto.randomUUID(),
      });
      open(started.interactionId);
    } catch (error) {
      setRefusal(strings.refused((error as Error).message));
    } finally {
      setSending(false);
    }
  };

  return (
    <section aria-labelledby="email-heading" class="panel">
      <h2 id="email-heading">{strings.newEmail}</h2>
      <form class="outbound" onSubmit={event => void send(event)}>
        <Field label={strings.emailTo} name="email-to" required value={to} onValue={setTo} />
        <Field label={strings.emailCc} name="email-cc" value={cc} onValue={setCc} />
        <Field
          label={strings.subject}
          name="email-subject"
          required
          value={subject}
          onValue={setSubject}
        />
        <label>
          {strings.text}
          <textarea
            name="email-text"
            rows={4}
            required
            value={text}
            onInput={event => setText(event.currentTarget.value)}
          />
        </label>
        <button type="submit" disabled={sending || !to.trim() || !subject.trim() || !text.trim()}>
          {sending ? strings.sending : strings.send}
        </button>
        {refusal && (
          <p role="alert" class="alert">
            {refusal}
          </p>
        )}
      </form>
    </section>
  );
}
