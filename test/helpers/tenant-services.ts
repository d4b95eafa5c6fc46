import request from 'supertest';
import { sql } from 'slonik';
import type { BuiltApp } from '../../api/app.js';
import type { Harness } from './harness.js';

/** A tenant provisioned by the operator, for tests that save services under it. */
export async function setupTenant(
  h: Harness,
  tenant: string,
): Promise<{ app: BuiltApp; admin: Record<string, string> }> {
  const app = h.app();
  const admin = { Authorization: `Bearer ${h.config.adminToken}` };
  await request(app)
    .post('/nexus/v3/provisioning/tenants')
    .set(admin)
    .send({ id: tenant, name: tenant })
    .expect(201);
  return { app, admin };
}

/** How many services are stored, across tenants (a refused save stores none). */
export const serviceCount = (h: Harness) =>
  h.db.oneFirst(sql.unsafe`SELECT count(*)::int FROM services`) as Promise<number>;

/** `PUT` one service of `tenant`. */
export const putService = (
  app: BuiltApp,
  admin: Record<string, string>,
  tenant: string,
  name: string,
  body: object,
) => request(app).put(`/nexus/v3/provisioning/services/${tenant}/${name}`).set(admin).send(body);
