import { z } from 'zod';

/** Request fields that several routes share (routes import these, never each other). */

/** A tenant id (`ccid`): the guide's contact-center id. */
export const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const tenantId = z
  .string()
  .regex(
    TENANT_ID,
    'must be 1-128 letters, digits, "_", "-" or ".", starting with a letter or digit',
  );
