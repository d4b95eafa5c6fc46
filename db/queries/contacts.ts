import { randomUUID } from 'node:crypto';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';

/** Queries on `contacts` and `contact_identifiers`: who a customer is, across interactions. */

export const contactRow = z.object({
  id: z.string(),
  tenant_id: z.string(),
  first_name: z.string().nullable(),
  last_name: z.string().nullable(),
  nickname: z.string().nullable(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type ContactRow = z.infer<typeof contactRow>;

export type IdentifierKind = 'email' | 'phone' | 'external';
export interface Identifier {
  kind: IdentifierKind;
  value: string;
}

/** The contact any of the identifiers belongs to (the oldest claim wins). */
export async function findContactId(
  tx: CommonQueryMethods,
  tenantId: string,
  identifiers: readonly Identifier[],
): Promise<string | undefined> {
  if (identifiers.length === 0) return undefined;
  const matches = identifiers.map(
    identifier => sql.fragment`(kind = ${identifier.kind} AND value = ${identifier.value})`,
  );
  const row = await tx.maybeOne(sql.type(z.object({ contact_id: z.string() }))`
    SELECT contact_id FROM contact_identifiers
    WHERE tenant_id = ${tenantId} AND (${sql.join(matches, sql.fragment` OR `)})
    ORDER BY created_at LIMIT 1`);
  return row?.contact_id;
}

export async function insertContact(
  tx: CommonQueryMethods,
  contact: {
    id: string;
    tenantId: string;
    firstName: string | null;
    lastName: string | null;
    nickname: string | null;
  },
): Promise<void> {
  await tx.query(sql.unsafe`
    INSERT INTO contacts (id, tenant_id, first_name, last_name, nickname)
    VALUES (${contact.id}, ${contact.tenantId}, ${contact.firstName}, ${contact.lastName}, ${contact.nickname})`);
}

/** Records identifiers for the contact; ones already claimed (by it or another) are kept. */
export async function addIdentifiers(
  tx: CommonQueryMethods,
  tenantId: string,
  contactId: string,
  identifiers: readonly Identifier[],
): Promise<void> {
  for (const identifier of identifiers) {
    await tx.query(sql.unsafe`
      INSERT INTO contact_identifiers (tenant_id, kind, value, contact_id)
      VALUES (${tenantId}, ${identifier.kind}, ${identifier.value}, ${contactId})
      ON CONFLICT (tenant_id, kind, value) DO NOTHING`);
  }
}

export async function findContact(
  db: CommonQueryMethods,
  tenantId: string,
  id: string,
): Promise<(ContactRow & { identifiers: Identifier[] }) | undefined> {
  const row = await db.maybeOne(sql.type(contactRow)`
    SELECT id, tenant_id, first_name, last_name, nickname, created_at, updated_at FROM contacts
    WHERE id = ${id} AND tenant_id = ${tenantId}`);
  if (!row) return undefined;
  const identifiers = await db.any(
    sql.type(z.object({ kind: z.enum(['email', 'phone', 'external']), value: z.string() }))`
      SELECT kind, value FROM contact_identifiers WHERE contact_id = ${id} ORDER BY kind, value`,
  );
  return { ...row, identifiers: [...identifiers] };
}

/**
 * The tenant's contact for one identifier (a phone number, an email address), created with the
 * identifier as its nickname when none has it. A concurrent start (or inbound message) may have
 * claimed the identifier first: its contact is used then. `returning` says whether it existed.
 */
export async function contactByIdentifier(
  tx: CommonQueryMethods,
  tenantId: string,
  kind: Identifier['kind'],
  value: string,
): Promise<{ contactId: string; returning: boolean }> {
  const identifiers = [{ kind, value }] as Identifier[];
  const found = await findContactId(tx, tenantId, identifiers);
  if (found) return { contactId: found, returning: true };
  const id = randomUUID();
  await insertContact(tx, { id, tenantId, firstName: null, lastName: null, nickname: value });
  await addIdentifiers(tx, tenantId, id, identifiers);
  return { contactId: (await findContactId(tx, tenantId, identifiers)) ?? id, returning: false };
}
