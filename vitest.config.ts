import { defineConfig } from 'vitest/config';

const integration = {
  globalSetup: ['test/global-setup.ts'],
  setupFiles: ['test/setup-leaks.ts'],
  // One file at a time: they share the machine's Redis and PostgreSQL servers.
  fileParallelism: false,
  testTimeout: 60_000,
  hookTimeout: 60_000,
};

/**
 * The suites that depend on how Redis is deployed, run again on a 3-master Redis Cluster and on
 * a TLS Redis with a test CA and client certificates, which the global setup starts for the
 * project (test/helpers/redis-topologies.ts): chat across two API processes (the socket.io
 * adapter and the workers' emitter), webhooks across a worker kill and a Redis loss, the sweeper
 * after a loss, rate limits and cache invalidation across replicas, and live sockets across a
 * Redis restart (on the cluster, a restart of every node, after which a worker's fetching at
 * times wedges until the fetch watchdog replaces it: workers/fetch-watchdog.ts).
 */
const onEveryTopology = [
  'test/integration/chat-processes.test.ts',
  'test/integration/webhooks-processes.test.ts',
  'test/integration/sweeper.test.ts',
  'test/integration/authorization.test.ts',
  'test/integration/realtime-redis-restart.test.ts',
];
const topologies = { cluster: onEveryTopology, tls: onEveryTopology };

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['{lib,domain,queues,api,workers,db,athena}/**/*.test.ts'],
        },
      },
      {
        test: { name: 'integration', include: ['test/integration/**/*.test.ts'], ...integration },
      },
      ...Object.entries(topologies).map(([topology, include]) => ({
        test: {
          name: `integration-${topology}`,
          include,
          env: { NEXUS_TEST_REDIS: topology },
          ...integration,
          // After the other projects, so their timing-sensitive files do not share the machine.
          sequence: { groupOrder: 1 },
        },
      })),
    ],
  },
});
