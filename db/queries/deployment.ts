import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

const deploymentRow = z.object({ id: z.string() });

/**
 * This deployment's id: the one `deployment` row, created by the first caller (migration 0018).
 * Every process of a deployment reads the same id; another database is another deployment.
 */
export async function deploymentId(db: CommonQueryMethods): Promise<string> {
  const id = await db.maybeOneFirst(sql.type(deploymentRow)`
    WITH created AS (
      INSERT INTO deployment DEFAULT VALUES ON CONFLICT (singleton) DO NOTHING RETURNING id
    )
    SELECT id FROM created UNION ALL SELECT id FROM deployment LIMIT 1`);
  // Two processes starting together: the one that waited on the other's insert does nothing, and
  // its statement's snapshot predates that row; a new statement sees it.
  return id ?? db.oneFirst(sql.type(deploymentRow)`SELECT id FROM deployment`);
}
