import { describe, expect, it } from 'vitest';
import { groupByTarget } from './webhook-dispatcher.js';

const d = (id: number, target: string, tenant = 't1') => ({
  id,
  tenant_id: tenant,
  target,
  event_id: `e${id}`,
});

describe('groupByTarget', () => {
  it('groups deliveries by tenant and target, in id order, at most `size` per group', () => {
    const groups = groupByTarget(
      [d(1, 'a'), d(2, 'b'), d(3, 'a'), d(4, 'a'), d(5, 'a', 't2'), d(6, 'b'), d(7, 'a')],
      2,
    );
    expect(groups).toEqual([
      { tenantId: 't1', targetId: 'a', deliveryIds: [1, 3] },
      { tenantId: 't1', targetId: 'b', deliveryIds: [2, 6] },
      { tenantId: 't1', targetId: 'a', deliveryIds: [4, 7] },
      { tenantId: 't2', targetId: 'a', deliveryIds: [5] },
    ]);
  });

  it('keeps targets whose names only differ across tenants apart, and answers nothing for nothing', () => {
    expect(groupByTarget([d(1, 'x', 'a'), d(2, 'x', 'b')], 20)).toHaveLength(2);
    expect(groupByTarget([], 20)).toEqual([]);
  });
});
