import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './harness.js';
import { freePort } from './redis-server.js';

export const BEARERBOX = process.env.TEST_KANNEL_BEARERBOX ?? '/usr/sbin/bearerbox';
export const SMSBOX = process.env.TEST_KANNEL_SMSBOX ?? '/usr/sbin/smsbox';

/** A real Kannel (bearerbox + smsbox) on loopback, with the test itself as its fake SMSC. */
export interface Kannel {
  /** smsbox's `sendsms` URL. */
  readonly sendsmsUrl: string;
  readonly username: string;
  readonly password: string;
  /** Lines the SMSC received (outbound messages: `from to text message`). */
  readonly outbound: string[];
  /** The SMSC hands Kannel a mobile-originated message. */
  receive(from: string, to: string, text: string): void;
  readonly logDir: string;
  stop(): Promise<void>;
}

/**
 * Starts Kannel as docs/kannel notes describe: bearerbox first (it listens on the fake SMSC
 * port), then smsbox, then the test connects as the SMSC. MO messages go to `moUrl` (smsbox's
 * `get-url`, credentials in the URL become HTTP Basic). Readiness is read from bearerbox's
 * status page, never by probing the SMSC port.
 */
export async function startKannel(options: {
  moUrl: string;
  /**
   * Adds an HTTP SMSC `web` (generic type) that forwards messages sent with `smsc=web` to this
   * URL: an answer starting "Sent" is a success, one starting "Rejected" a permanent failure
   * (Kannel then reports type 16).
   */
  httpSmscUrl?: string;
}): Promise<Kannel> {
  const [admin, box, smsc, sendsms] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const dir = mkdtempSync(join(tmpdir(), 'kannel-'));
  const username = 'hub';
  const password = 'hub-sendsms-password';
  const config = `
group = core
admin-port = ${admin}
admin-password = admin-pw
status-password = admin-pw
admin-allow-ip = 127.0.0.1
smsbox-port = ${box}
box-allow-ip = 127.0.0.1
log-file = "${dir}/bearerbox.log"
log-level = 1
access-log = "${dir}/access.log"
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = ${smsc}
connect-allow-ip = 127.0.0.1
denied-smsc-id = web
${
  options.httpSmscUrl
    ? `
group = smsc
smsc = http
smsc-id = web
system-type = generic
port = ${await freePort()}
connect-allow-ip = 127.0.0.1
allowed-smsc-id = web
send-url = "${options.httpSmscUrl}?from=%P&to=%p&text=%a"
status-success-regex = "^Sent"
status-permfail-regex = "^Rejected"
`
    : ''
}
group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = ${box}
sendsms-port = ${sendsms}
sendsms-interface = 127.0.0.1
log-file = "${dir}/smsbox.log"
log-level = 1

group = sendsms-user
username = ${username}
password = ${password}
concatenation = true
max-messages = 10

group = sms-service
keyword = default
catch-all = true
max-messages = 0
get-url = "${options.moUrl}&device_address=%p&inbound_address=%P&message=%a&message_id=%I"
`;
  const file = join(dir, 'kannel.conf');
  writeFileSync(file, config);
  const children: ChildProcess[] = [];
  const run = (binary: string) => {
    const child = spawn(binary, [file], { stdio: 'ignore' });
    children.push(child);
    return child;
  };
  const status = () =>
    fetch(`http://127.0.0.1:${admin}/status.txt?password=admin-pw`)
      .then(res => res.text())
      .catch(() => '');
  run(BEARERBOX);
  await eventually(async () => (await status()).includes('Status: running'), 10_000, 'bearerbox');
  run(SMSBOX);
  const outbound: string[] = [];
  let socket: Socket | undefined;
  await eventually(
    () =>
      new Promise<boolean>(resolve => {
        const attempt = connect(smsc, '127.0.0.1');
        attempt.once('connect', () => {
          socket = attempt;
          resolve(true);
        });
        attempt.once('error', () => resolve(false));
      }),
    10_000,
    'the fake SMSC connection',
  );
  let buffered = '';
  socket?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    outbound.push(...lines.filter(Boolean));
  });
  await eventually(
    async () => {
      const text = await status();
      return /FAKE:\d+ \(online/.test(text) && /smsbox:/.test(text);
    },
    10_000,
    'the SMSC online and smsbox connected',
  );
  await eventually(
    async () => (await fetch(`http://127.0.0.1:${sendsms}/`).catch(() => undefined)) !== undefined,
    10_000,
    'smsbox sendsms',
  );
  return {
    sendsmsUrl: `http://127.0.0.1:${sendsms}/cgi-bin/sendsms`,
    username,
    password,
    outbound,
    logDir: dir,
    receive(from, to, text) {
      socket?.write(`${from} ${to} text ${text}\n`);
    },
    async stop() {
      socket?.destroy();
      await Promise.all(
        children.reverse().map(
          child =>
            new Promise<void>(resolve => {
              if (child.exitCode !== null) return resolve();
              const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
              child.once('exit', () => {
                clearTimeout(timer);
                resolve();
              });
              child.kill('SIGTERM');
            }),
        ),
      );
    },
  };
}
