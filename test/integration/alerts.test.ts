import { Worker } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { jobsStalledTotal } from '../../lib/metrics.js';
import { closeRedis, createRedis } from '../../lib/redis.js';
import {
  checkRules,
  findPromtool,
  lintAlerts,
  renderRuleGroups,
} from '../../scripts/rules-check.js';
import { eventually, useHarness } from '../helpers/harness.js';

/** CI must check the alerts: without promtool the test fails there instead of skipping. */
const promtool = findPromtool();
const inCi = process.env['CI'] === 'true';

describe('alert rules (promtool)', () => {
  it.runIf(inCi)('promtool is available in CI (.ci/run unpacks it into /opt/promtool)', () => {
    expect(promtool).toBeDefined();
  });

  it.runIf(promtool !== undefined)(
    'the rendered rules pass `promtool check rules` and every alert its fire / no-fire tests',
    () => {
      const output = checkRules(promtool!);
      expect(output).toMatch(/SUCCESS: \d+ rules found/);
      expect(output).toMatch(/Unit Testing: {2}alerts\.test\.yaml\n {2}SUCCESS/);
    },
  );

  it("the guide's two alerts and the queue alerts render, each with severity, summary and description", () => {
    const groups = renderRuleGroups();
    const alerts = groups.flatMap(group => group.rules.map(rule => rule.alert));
    expect(alerts).toEqual([
      'NexusErrorRate',
      'NexusMemoryUsage',
      'NexusQueueBacklog',
      'NexusQueueOldestWaiting',
      'NexusUndeliveredGrowth',
      'NexusJobsStalled',
      'NexusSweeperReenqueued',
      'NexusWebhookTargetsDisabled',
      'NexusRedisDown',
      'NexusPostgresDown',
    ]);
    // The check's own lint refuses an alert without annotations or without a firing test.
    expect(lintAlerts([{ name: 'bare', rules: [{ alert: 'NexusBare' }] }], [])).toEqual([
      'NexusBare: no severity label',
      'NexusBare: no summary annotation',
      'NexusBare: no description annotation',
      'NexusBare: no test in which it fires',
    ]);
  });
});

describe('monitoring.alarmThresholds', () => {
  it("sets the queue alerts' thresholds and durations", () => {
    const rules = renderRuleGroups([
      'monitoring.alarmThresholds.queueBacklog.jobs=250',
      'monitoring.alarmThresholds.queueBacklog.for=3m',
      'monitoring.alarmThresholds.stalled.window=1h',
    ]).flatMap(group => group.rules) as { alert?: string; expr?: string; for?: string }[];
    const backlog = rules.find(rule => rule.alert === 'NexusQueueBacklog');
    expect(backlog?.expr).toMatch(/\n\s+> 250$/);
    expect(backlog?.for).toBe('3m');
    expect(rules.find(rule => rule.alert === 'NexusJobsStalled')?.expr).toContain('[1h]');
  });

  it('refuses a duration Prometheus would not read and a negative threshold', () => {
    expect(() => renderRuleGroups(['monitoring.alarmThresholds.redisDown.for=2 minutes'])).toThrow(
      /redisDown.for: Does not match pattern/,
    );
    expect(() => renderRuleGroups(['monitoring.alarmThresholds.undelivered.increase=-1'])).toThrow(
      /undelivered.increase: Must be greater than or equal to 0/,
    );
  });
});

describe('nexus_jobs_stalled_total', () => {
  const h = useHarness();

  it("counts a job the worker runtime's stall check finds without its lock", async () => {
    const queue = h().queues.get('ai-connector');
    await queue.add(
      'ai-connector',
      { tenantId: 't1', messageId: 'm-stall', connector: 'bot' },
      {
        jobId: 'stalled-1',
      },
    );
    const stalledCount = async () =>
      (await jobsStalledTotal.get()).values.find(value => value.labels.queue === 'ai-connector')
        ?.value ?? 0;
    const before = await stalledCount();

    // A worker takes the job and never renews its lock (as a process that died would).
    const connection = createRedis(h().config.redis, 'worker', 'stall-taker', h().log);
    const taker = new Worker('ai-connector', null, {
      connection,
      prefix: h().config.queues.prefix,
      lockDuration: 200,
    });
    try {
      expect((await taker.getNextJob('a-token'))?.id).toBe('stalled-1');
    } finally {
      await taker.close(true);
      await closeRedis(connection);
    }

    // The runtime's workers (stall check every second) find it and count it once.
    await h().startWorkers({
      processors: { 'ai-connector': () => Promise.resolve() },
      select: ['ai-connector'],
    });
    await eventually(async () => (await stalledCount()) > before, 15_000, 'the stalled count');
    expect(await stalledCount()).toBe(before + 1);
  });
});
