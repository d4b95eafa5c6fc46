import { EventEmitter } from 'node:events';
import { LRUCache } from 'lru-cache';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { closeRedis, createSubscriber, type RedisConnection } from './redis.js';

/** What changed: every replica drops what it cached about it. */
export type Invalidation =
  | { kind: 'apikey'; id: string }
  | { kind: 'tenant'; id: string }
  | { kind: 'service'; tenant: string; name: string }
  | { kind: 'channel'; tenant: string }
  /** An agent was changed (enabled or not): its open sockets are checked. */
  | { kind: 'agent'; tenant: string; id: string }
  /** Sent locally when the subscription (re)starts: messages may have been missed. */
  | { kind: 'all' };

/**
 * Cache invalidation across replicas over Redis pub/sub. A replica that changes tenants, keys,
 * services, channels or agents publishes what changed; every replica (itself included) drops it
 * from its caches (and closes the sockets a disabled agent or tenant holds). While the subscription is down a replica cannot hear changes, so {@link live} is false
 * and caches are bypassed; when it comes back every cache is flushed. Together this bounds the
 * staleness of a cached lookup by the pub/sub latency (milliseconds), not the cache TTL.
 */
export class InvalidationBus {
  private readonly events = new EventEmitter();
  private subscribed = false;

  constructor(
    private readonly publisher: RedisConnection,
    private readonly subscriber: RedisConnection,
    private readonly channel: string,
    private readonly log: Logger,
  ) {
    this.events.setMaxListeners(0);
    subscriber.on('ready', () => void this.subscribe());
    for (const event of ['close', 'reconnecting', 'end'] as const) {
      subscriber.on(event, () => {
        this.subscribed = false;
      });
    }
    subscriber.on('message', (from: string, text: string) => {
      if (from !== this.channel) return;
      try {
        this.events.emit('invalidate', JSON.parse(text) as Invalidation);
      } catch (error) {
        this.log.warn({ err: error }, 'ignoring a malformed invalidation message');
      }
    });
    if (subscriber.status === 'ready') void this.subscribe();
  }

  /** Opens the bus's own subscriber connection (it retries forever, like a worker's). */
  static create(
    config: Config,
    publisher: RedisConnection,
    log: Logger,
    name = 'invalidation',
  ): InvalidationBus {
    // On a cluster, a connection to one node (createSubscriber): a cluster client stays `ready`
    // through node outages and never says when its subscription came back.
    const subscriber = createSubscriber(config.redis, name, log);
    return new InvalidationBus(publisher, subscriber, `${config.queues.prefix}:invalidate`, log);
  }

  /** True while this replica hears every change; caches are bypassed otherwise. */
  get live(): boolean {
    return this.subscribed && this.subscriber.status === 'ready';
  }

  /**
   * Tells every replica. Also applied locally at once, so the caller's next read is fresh even
   * before the message comes back. Never throws: when Redis is away, the other replicas'
   * subscriptions are down too and they bypass their caches.
   */
  async publish(change: Invalidation): Promise<void> {
    this.events.emit('invalidate', change);
    try {
      await this.publisher.publish(this.channel, JSON.stringify(change));
    } catch (error) {
      this.log.warn({ err: error, change }, 'could not publish a cache invalidation');
    }
  }

  onInvalidate(listener: (change: Invalidation) => void): () => void {
    this.events.on('invalidate', listener);
    return () => this.events.off('invalidate', listener);
  }

  async close(): Promise<void> {
    this.events.removeAllListeners();
    await closeRedis(this.subscriber);
  }

  private async subscribe(): Promise<void> {
    try {
      await this.subscriber.subscribe(this.channel);
      this.subscribed = true;
      this.events.emit('invalidate', { kind: 'all' } satisfies Invalidation);
    } catch (error) {
      this.log.warn({ err: error }, 'could not subscribe to cache invalidations');
    }
  }
}

/**
 * A read-through cache whose entries the bus drops. `evicts(change, key, value)` says whether a
 * change concerns an entry; `{kind: 'all'}` flushes everything.
 */
export class SharedCache<K extends string, V extends object> {
  private readonly lru: LRUCache<K, V>;
  private readonly pending = new Map<K, Promise<V | undefined>>();
  private generation = 0;

  constructor(
    private readonly bus: InvalidationBus,
    options: { max: number; ttlMs: number },
    private readonly evicts: (change: Invalidation, key: K, value: V) => boolean,
  ) {
    this.lru = new LRUCache<K, V>({ max: options.max, ttl: options.ttlMs });
    bus.onInvalidate(change => {
      this.generation++;
      this.pending.clear();
      if (change.kind === 'all') {
        this.lru.clear();
        return;
      }
      for (const [key, value] of this.lru.entries()) {
        if (this.evicts(change, key, value)) this.lru.delete(key);
      }
    });
  }

  /** The cached value, or `load()`'s (cached when defined and the bus is live). */
  async get(key: K, load: () => Promise<V | undefined>): Promise<V | undefined> {
    if (!this.bus.live) return load();
    const hit = this.lru.get(key);
    if (hit) return hit;
    const inflight = this.pending.get(key);
    if (inflight) return inflight;
    const generation = this.generation;
    const loading = load().finally(() => {
      if (this.pending.get(key) === loading) this.pending.delete(key);
    });
    this.pending.set(key, loading);
    const value = await loading;
    // A change that arrived while loading may concern what was read: do not keep it.
    if (value && generation === this.generation && this.bus.live) this.lru.set(key, value);
    return value;
  }
}
