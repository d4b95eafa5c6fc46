import { SMTPServer } from 'smtp-server';

/** What the sink has taken since its last reset. */
export interface SinkCounts {
  /** Mails taken (each DATA accepted). */
  mails: number;
  /** Distinct recipients: every bench mail has its own, so `mails - recipients` are duplicates. */
  recipients: number;
  /** Bytes of message text taken. */
  bytes: number;
  /** TCP connections opened. */
  connections: number;
  /** `performance.now()` of the last mail taken. */
  lastAt: number;
}

export interface SmtpSink {
  readonly port: number;
  counts(): SinkCounts;
  reset(): void;
  close(): Promise<void>;
}

/**
 * The bench's loopback SMTP sink (npm `smtp-server`, no TLS, no AUTH): takes every mail, keeps
 * only counts (no bodies), and answers as fast as it can, so the systems under test are measured
 * and not the sink. It runs in the bench process; its CPU is counted with the load generator's.
 */
export async function startSmtpSink(): Promise<SmtpSink> {
  const recipients = new Set<string>();
  let mails = 0;
  let bytes = 0;
  let connections = 0;
  let lastAt = 0;
  const server = new SMTPServer({
    secure: false,
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    size: 50 * 1024 * 1024,
    // Pooled connections of the systems are cut at close, not waited for.
    closeTimeout: 500,
    onConnect(_session, callback) {
      connections++;
      callback();
    },
    onData(stream, session, callback) {
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
      });
      stream.on('end', () => {
        mails++;
        for (const rcpt of session.envelope.rcptTo) recipients.add(rcpt.address);
        lastAt = performance.now();
        callback();
      });
    },
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as { port: number };
  return {
    port,
    counts: () => ({ mails, recipients: recipients.size, bytes, connections, lastAt }),
    reset() {
      recipients.clear();
      mails = 0;
      bytes = 0;
      connections = 0;
      lastAt = 0;
    },
    close: () => new Promise<void>(resolve => server.close(() => resolve())),
  };
}
