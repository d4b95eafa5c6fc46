import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/**
 * This deployment's id: the one `deployment` row, created by the first caller (migration 0021).
 * Every process of a deployment reads the same id; another database is another deployment.
 */
export async function deploymentId(db: CommonQueryMethods): Promise<string> {
  return db.oneFirst(sql.type(z.object({ id: z.string() }))`
    WITH created AS (
      INSERT INTO deployment DEFAULT VALUES ON CONFLICT (singleton) DO NOTHING RETURNING id
    )
    SELECT id FROM created UNION ALL SELECT id FROM deployment LIMIT 1`);
}
