import { SMTPServer, type SMTPServerAddress } from 'smtp-server';

/** One mail the sink took: its envelope and its bytes as received. */
export interface SunkMail {
  readonly from: string;
  readonly to: readonly string[];
  readonly raw: Buffer;
}

export interface SmtpSink {
  readonly port: number;
  readonly mails: SunkMail[];
  /** Recipients the sink refuses at RCPT with `550 5.1.1`. */
  readonly refuse: Set<string>;
  /** Senders the sink refuses at MAIL FROM with `550 5.1.0` (a relay's sender policy). */
  readonly refuseSenders: Set<string>;
  close(): Promise<void>;
}

/**
 * A receiving SMTP server (npm `smtp-server`) on a free loopback port: takes every mail except
 * to the recipients in `refuse` (550 5.1.1 at RCPT, as a real mailbox provider answers an unknown
 * user), with optional AUTH PLAIN/LOGIN credentials it checks.
 */
export async function startSmtpSink(
  options: { auth?: { username: string; password: string } } = {},
): Promise<SmtpSink> {
  const mails: SunkMail[] = [];
  const refuse = new Set<string>();
  const refuseSenders = new Set<string>();
  const server = new SMTPServer({
    secure: false,
    disabledCommands: options.auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    authOptional: !options.auth,
    allowInsecureAuth: true,
    logger: false,
    size: 50 * 1024 * 1024,
    // Idle pooled connections of the hub are cut at close, not waited for.
    closeTimeout: 500,
    onAuth(auth, _session, callback) {
      const expected = options.auth;
      if (expected && auth.username === expected.username && auth.password === expected.password) {
        callback(null, { user: auth.username });
      } else callback(new Error('535 5.7.8 authentication failed'));
    },
    onMailFrom(address: SMTPServerAddress, _session, callback) {
      if (refuseSenders.has(address.address.toLowerCase())) {
        const error = new Error('5.1.0 sender address rejected') as Error & {
          responseCode: number;
        };
        error.responseCode = 550;
        callback(error);
      } else callback();
    },
    onRcptTo(address: SMTPServerAddress, _session, callback) {
      if (refuse.has(address.address.toLowerCase())) {
        const error = new Error('5.1.1 no such user here') as Error & { responseCode: number };
        error.responseCode = 550;
        callback(error);
      } else callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          to: session.envelope.rcptTo.map(entry => entry.address),
          raw: Buffer.concat(chunks),
        });
        callback();
      });
    },
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as { port: number };
  return {
    port,
    mails,
    refuse,
    refuseSenders,
    close: () => new Promise<void>(resolve => server.close(() => resolve())),
  };
}
