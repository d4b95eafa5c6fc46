import { AppError } from './errors.js';
import type { RedisConnection } from './redis.js';

/** The Redis key that names the deployment a queue prefix belongs to. */
export const prefixStampKey = (prefix: string) => `${prefix}:nexus-deployment`;

/**
 * Stamps the queue prefix with this deployment's id (`SET NX`), or checks the stamp that is there:
 * a prefix stamped by another deployment throws `NEXUS_ERR_QUEUE_PREFIX_TAKEN`, since two
 * deployments on one prefix would take each other's jobs. Answers true when it wrote the stamp
 * (first start, or Redis lost its data).
 */
export async function stampQueuePrefix(
  connection: RedisConnection,
  prefix: string,
  deploymentId: string,
): Promise<boolean> {
  const key = prefixStampKey(prefix);
  let owner: string | null = null;
  // A stamp deleted between the two commands is written again on the next turn.
  for (let turn = 0; owner === null && turn < 3; turn++) {
    if ((await connection.set(key, deploymentId, 'NX')) === 'OK') return true;
    owner = await connection.get(key);
  }
  if (owner !== null && owner !== deploymentId) {
    throw new AppError(
      'NEXUS_ERR_QUEUE_PREFIX_TAKEN',
      `the queue prefix "${prefix}" on this Redis belongs to another deployment (${owner}; this one is ${deploymentId}): ` +
        "two deployments on one prefix take each other's jobs. Set NEXUS_QUEUE_PREFIX to a prefix of this deployment's own " +
        `(or, if the other deployment is gone for good, delete the key ${key})`,
    );
  }
  return false;
}
