import pg from 'pg';
import type { Logger } from '../lib/logger.js';

/** How long a listener waits before it connects again after losing its connection. */
const RECONNECT_MS = 1_000;

/**
 * A PostgreSQL connection of its own that `LISTEN`s on one channel and calls `onNotify` for each
 * notification (pooled connections cannot: they are shared). A lost connection is opened again
 * after a second, and `onNotify` is called then too, since notifications sent meanwhile are lost:
 * whoever listens must also poll, the notification only makes it sooner.
 */
export class PgListener {
  private client: pg.Client | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Logged once per outage, not at every reconnection attempt. */
  private failing = false;

  constructor(
    private readonly config: { url: string; ssl: boolean },
    private readonly channel: string,
    private readonly onNotify: () => void,
    private readonly log: Logger,
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`bad channel name ${channel}`);
  }

  start(): void {
    this.stopped = false;
    void this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.config.url,
      ssl: this.config.ssl ? {} : undefined,
      keepAlive: true,
    });
    const lost = (error?: Error) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.removeAllListeners();
      void client.end().catch(() => undefined);
      if (this.stopped) return;
      if (error && !this.failing) {
        this.failing = true;
        this.log.warn({ err: error, channel: this.channel }, 'listen connection lost');
      }
      this.timer = setTimeout(() => void this.connect(), RECONNECT_MS);
      this.timer.unref();
    };
    this.client = client;
    client.on('error', lost);
    client.on('end', () => lost());
    client.on('notification', () => this.onNotify());
    try {
      await client.connect();
      await client.query(`LISTEN ${this.channel}`);
      if (this.failing) this.log.info({ channel: this.channel }, 'listening again');
      this.failing = false;
      if (this.stopped) {
        await this.stop();
        return;
      }
      // What was sent while the connection was down is lost: catch up once.
      this.onNotify();
    } catch (error) {
      lost(error as Error);
    }
  }
}
