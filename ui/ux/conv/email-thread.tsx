import { useEffect, useState } from 'preact/hooks';
import { call } from '../../shared/api.js';
import { strings } from './strings.js';

interface Address {
  address: string;
  name?: string | null;
}
interface Attachment {
  mediaId: string;
  filename: string;
  contentType: string;
  size: number;
}
export interface Mail {
  id: string;
  direction: 'inbound' | 'outbound';
  from: Address;
  to: Address[];
  cc: Address[];
  bcc?: Address[];
  subject: string;
  date: string;
  text: string;
  attachments: Attachment[];
  deliveryStatus: string | null;
}

const shown = (list: readonly Address[]) =>
  list.map(entry => (entry.name ? `${entry.name} <${entry.address}>` : entry.address)).join(', ');

const size = (bytes: number) =>
  bytes < 1024
    ? `${bytes} B`
    : bytes < 1024 ** 2
      ? `${Math.round(bytes / 1024)} KB`
      : `${(bytes / 1024 ** 2).toFixed(1)} MB`;

/**
 * An email conversation's thread (`GET …/interactions/{id}/emails`): each mail with its subject,
 * people, date, text and attachments, newest last. Read again when the transcript grows (a new
 * mail is a new message). An attachment is fetched with the agent's token and saved by the
 * browser; it is never opened in the page.
 */
export function EmailThread({
  iid,
  token,
  version,
}: {
  iid: string;
  token: () => string;
  /** Changes when the conversation's messages change. */
  version: number;
}) {
  const [mails, setMails] = useState<Mail[]>();
  const [problem, setProblem] = useState<string>();

  useEffect(() => {
    call<{ items: Mail[] }>(`/nexus/v3/agent/interactions/${encodeURIComponent(iid)}/emails`, {
      token: token(),
    }).then(
      answer => setMails(answer.items),
      (error: unknown) => setProblem(strings.error((error as Error).message)),
    );
  }, [iid, version]);

  const download = async (attachment: Attachment) => {
    setProblem(undefined);
    try {
      const res = await fetch(
        `/nexus/v3/agent/interactions/${encodeURIComponent(iid)}/media/${encodeURIComponent(attachment.mediaId)}`,
        { headers: { Authorization: `Bearer ${token()}` }, credentials: 'omit' },
      );
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const url = URL.createObjectURL(await res.blob());
      const link = document.createElement('a');
      link.href = url;
      link.download = attachment.filename;
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      setProblem(strings.error((error as Error).message));
    }
  };

  if (!mails || mails.length === 0) return null;
  return (
    <section class="thread" aria-label={strings.thread}>
      <h2>{strings.thread}</h2>
      {problem && (
        <p role="alert" class="error">
          {problem}
        </p>
      )}
      {mails.map(mail => (
        <article key={mail.id} class={`mail mail-${mail.direction}`} aria-label={mail.subject}>
          <h3>{mail.subject}</h3>
          <dl>
            <dt>{strings.mailFrom}</dt>
            <dd>{shown([mail.from])}</dd>
            <dt>{strings.mailTo}</dt>
            <dd>{shown(mail.to)}</dd>
            {mail.cc.length > 0 && (
              <>
                <dt>{strings.mailCc}</dt>
                <dd>{shown(mail.cc)}</dd>
              </>
            )}
            {mail.bcc && mail.bcc.length > 0 && (
              <>
                <dt>{strings.mailBcc}</dt>
                <dd>{shown(mail.bcc)}</dd>
              </>
            )}
            <dt>{strings.mailDate}</dt>
            <dd>
              {new Date(mail.date).toLocaleString()}
              {mail.deliveryStatus && ` · ${strings.mailStatus(mail.deliveryStatus)}`}
            </dd>
          </dl>
          <details>
            <summary>{strings.mailText}</summary>
            <pre class="mail-text">{mail.text}</pre>
          </details>
          {mail.attachments.length > 0 && (
            <ul class="attachments" aria-label={strings.attachments}>
              {mail.attachments.map(attachment => (
                <li key={attachment.mediaId}>
                  <button type="button" class="link" onClick={() => void download(attachment)}>
                    {attachment.filename}
                  </button>{' '}
                  <span class="muted">
                    {attachment.contentType}, {size(attachment.size)}
                  </span>
                </li>
              ))}
            </ul>
          )}
        </article>
      ))}
    </section>
  );
}
