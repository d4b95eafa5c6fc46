import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import type { Logger } from '../lib/logger.js';
import { SecretBox } from '../lib/secrets.js';
import { listServicesSealedWithOtherKeys, resealService } from './queries/services.js';
import { serviceSecretContext } from './service-directory.js';

/**
 * Re-seals every stored secret with the current NEXUS_SECRET_KEY: service secrets (whose key id
 * is a column), tenant tokens (whose key id is in the sealed text) and webhook targets' previous
 * secrets still in their rotation grace. Runs in batches, each in
 * its own transaction, and can be run again at any time. Returns how many were re-sealed.
 */
export async function rotateSecrets(
  db: DatabasePool,
  box: SecretBox,
  log: Logger,
  batch = 200,
): Promise<{ services: number; tenants: number; webhookPreviousSecrets: number }> {
  let services = 0;
  for (;;) {
    const done = await db.transaction(async tx => {
      const rows = await listServicesSealedWithOtherKeys(tx, box.currentKeyId, batch);
      for (const row of rows) {
        const context = serviceSecretContext(row.tenant_id, row.name);
        const resealed = box.seal(box.open(row.secret_sealed as string, context), context);
        await resealService(tx, row.tenant_id, row.name, resealed, box.currentKeyId);
      }
      return rows.length;
    });
    services += done;
    if (done < batch) break;
  }

  let tenants = 0;
  const sealed = await db.any(
    sql.type(z.object({ id: z.string(), token_sealed: z.string() }))`
      SELECT id, token_sealed FROM tenants WHERE token_sealed IS NOT NULL ORDER BY id`,
  );
  for (const row of sealed) {
    if (SecretBox.keyIdOf(row.token_sealed) === box.currentKeyId) continue;
    const context = `tenant:${row.id}`;
    const resealed = box.seal(box.open(row.token_sealed, context), context);
    // Only if nobody changed the token meanwhile.
    const result = await db.query(sql.unsafe`
      UPDATE tenants SET token_sealed = ${resealed}
      WHERE id = ${row.id} AND token_sealed = ${row.token_sealed}`);
    tenants += result.rowCount;
  }
  // Webhook targets' previous secrets, while their rotation grace lasts.
  let previous = 0;
  const targets = await db.any(
    sql.type(z.object({ tenant_id: z.string(), name: z.string(), sealed: z.string() }))`
      SELECT tenant_id, name, previous_secret_sealed AS sealed FROM webhook_targets
      WHERE previous_secret_sealed IS NOT NULL AND previous_until > now()`,
  );
  for (const row of targets) {
    if (SecretBox.keyIdOf(row.sealed) === box.currentKeyId) continue;
    const context = serviceSecretContext(row.tenant_id, row.name);
    const resealed = box.seal(box.open(row.sealed, context), context);
    const result = await db.query(sql.unsafe`
      UPDATE webhook_targets SET previous_secret_sealed = ${resealed},
                                 previous_secret_key_id = ${box.currentKeyId}
      WHERE tenant_id = ${row.tenant_id} AND name = ${row.name}
        AND previous_secret_sealed = ${row.sealed}`);
    previous += result.rowCount;
  }
  log.info(
    { services, tenants, webhookPreviousSecrets: previous, keyId: box.currentKeyId },
    'secrets re-sealed',
  );
  return { services, tenants, webhookPreviousSecrets: previous };
}
