import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eventually } from './harness.js';
import { freePort } from './redis-server.js';

export const SMTPD = process.env.TEST_OPENSMTPD ?? '/usr/sbin/smtpd';

/**
 * OpenSMTPD keeps its queue in one directory fixed at build time and its control socket at a
 * fixed path: one instance per machine. Every OpenSMTPD test sits in one file, run serially.
 */
const SPOOL = '/var/spool/smtpd';
const CONTROL_SOCKET = '/var/run/smtpd.sock';
const LOCK = join(tmpdir(), 'nexus-test-opensmtpd.lock');

/** A real OpenSMTPD (Debian `opensmtpd`) on a free loopback port, relaying to two local ports. */
export interface OpenSmtpd {
  /** Where it takes mail (no TLS, no authentication: loopback only). */
  readonly port: number;
  /** The name it gives itself (the bounce sender is `MAILER-DAEMON@<hostname>`). */
  readonly hostname: string;
  /** Its log (`smtpd -d -v` on stderr): one line per session, envelope and delivery. */
  readonly log: string[];
  close(): Promise<void>;
}

let running = false;

/** Whether another smtpd (the machine's own, or another test process's) answers its socket. */
function controlSocketAnswers(): Promise<boolean> {
  if (!existsSync(CONTROL_SOCKET)) return Promise.resolve(false);
  return new Promise(resolve => {
    const socket = connect(CONTROL_SOCKET);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Takes the machine-wide lock; a lock whose process is gone is taken over. */
function lock(): void {
  for (let tries = 0; tries < 2; tries++) {
    try {
      closeSync(openSync(LOCK, 'wx'));
      writeFileSync(LOCK, String(process.pid));
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(readFileSync(LOCK, 'utf8') || '0');
      let alive = false;
      try {
        alive = owner > 0 && process.kill(owner, 0);
      } catch {
        alive = false;
      }
      if (alive) {
        throw new Error(
          `OpenSMTPD is already run by test process ${owner}: its queue directory (${SPOOL}) is one per machine, so OpenSMTPD tests run one at a time`,
        );
      }
      rmSync(LOCK, { force: true });
    }
  }
  throw new Error(`could not take ${LOCK}`);
}

/**
 * Empties the queue: envelopes a killed test run left there would otherwise be delivered to this
 * run's ports. The directories themselves stay (smtpd checks their owners and modes).
 */
function emptySpool(): void {
  if (!existsSync(SPOOL)) return;
  for (const dir of ['queue', 'incoming', 'temporary', 'corrupt', 'purge', 'offline']) {
    const path = join(SPOOL, dir);
    if (!existsSync(path)) continue;
    for (const entry of readdirSync(path)) {
      rmSync(join(path, entry), { recursive: true, force: true });
    }
  }
}

/**
 * Starts OpenSMTPD in the foreground (`smtpd -d`) with a configuration of its own: it listens on
 * 127.0.0.1 and relays mail for `bounceDomain` to `hubPort` (the hub's SMTP listener) and every
 * other mail to `sinkPort`, both without TLS. A permanent refusal from the sink (5xx) makes it
 * send its bounce report to the mail's return path at once (reports are grouped for a second);
 * temporary ones would be retried on its own schedule, which no test here waits for.
 *
 * Fails (never skips) when OpenSMTPD is not installed, and refuses to run twice at once.
 */
export async function startOpenSmtpd(options: {
  bounceDomain: string;
  hubPort: number;
  sinkPort: number;
}): Promise<OpenSmtpd> {
  if (!existsSync(SMTPD)) {
    throw new Error(
      `OpenSMTPD is not installed (${SMTPD}): the SMTP tests run against it. Install it with \`apt-get install opensmtpd\` (.ci/run does), or point TEST_OPENSMTPD at the binary.`,
    );
  }
  if (running) throw new Error('one OpenSMTPD at a time (its queue directory is one per machine)');
  if (await controlSocketAnswers()) {
    throw new Error(
      `an OpenSMTPD is running on this machine (${CONTROL_SOCKET} answers): stop it before the SMTP tests, which need the machine's queue directory`,
    );
  }
  lock();
  running = true;
  const dir = mkdtempSync(join(tmpdir(), 'opensmtpd-'));
  let child: ChildProcess | undefined;
  const release = () => {
    emptySpool();
    rmSync(dir, { recursive: true, force: true });
    rmSync(LOCK, { force: true });
    running = false;
  };
  try {
    emptySpool();
    const port = await freePort();
    const hostname = 'mta.nexus.test';
    const file = join(dir, 'smtpd.conf');
    writeFileSync(
      file,
      [
        '# Written by test/helpers/opensmtpd.ts.',
        `listen on 127.0.0.1 port ${port} hostname ${hostname}`,
        'mta limit max-conn-per-route 20 max-conn-per-host 20 conn-delay-route 0 conn-delay-relay 0 reconn-delay-route 0',
        `action "hub" relay host smtp+notls://127.0.0.1:${options.hubPort} helo ${hostname}`,
        `action "sink" relay host smtp+notls://127.0.0.1:${options.sinkPort} helo ${hostname}`,
        `match from any for domain "${options.bounceDomain}" action "hub"`,
        'match from any for any action "sink"',
        '',
      ].join('\n'),
    );
    chmodSync(file, 0o600);
    const check = spawnSync(SMTPD, ['-n', '-f', file], { encoding: 'utf8' });
    if (check.status !== 0) {
      throw new Error(`smtpd -n refused the configuration: ${check.stderr}${check.stdout}`);
    }
    const log: string[] = [];
    let buffered = '';
    child = spawn(SMTPD, ['-d', '-v', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr?.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      // The debug chatter is dropped; sessions, envelopes, deliveries and warnings are kept.
      log.push(...lines.filter(line => line !== '' && !line.startsWith('debug:')));
    });
    const exited = new Promise<number | null>(resolve => child!.once('exit', resolve));
    await eventually(
      async () => {
        if (child!.exitCode !== null) {
          throw new Error(`smtpd exited with ${child!.exitCode}: ${log.join('\n')}`);
        }
        return greets(port);
      },
      15_000,
      'OpenSMTPD greeting on its port',
    );
    let closing: Promise<void> | undefined;
    return {
      port,
      hostname,
      log,
      close: () =>
        (closing ??= (async () => {
          if (child!.exitCode === null) {
            const timer = setTimeout(() => child!.kill('SIGKILL'), 5_000);
            child!.kill('SIGTERM');
            await exited;
            clearTimeout(timer);
          }
          release();
        })()),
    };
  } catch (error) {
    if (child?.exitCode === null) child.kill('SIGKILL');
    release();
    throw error;
  }
}

/** Whether the port answers with an SMTP greeting. */
function greets(port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(1_000, () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('data', (chunk: Buffer) => {
      socket.end('QUIT\r\n');
      resolve(chunk.toString('latin1').startsWith('220'));
    });
    socket.once('error', () => resolve(false));
  });
}
