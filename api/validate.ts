import type { z } from 'zod';
import { AppError } from '../lib/errors.js';

/**
 * Parses request input with a zod schema. On failure throws a 400 `NEXUS_ERR_VALIDATION` naming
 * the first offending field, e.g. `body.since: Invalid datetime`.
 */
export function parseInput<S extends z.ZodTypeAny>(
  schema: S,
  value: unknown,
  where: 'body' | 'query' | 'params' | 'body.data',
): z.infer<S> {
  const parsed = schema.safeParse(value ?? {});
  if (parsed.success) return parsed.data as z.infer<S>;
  const issue = parsed.error.issues[0];
  // An unknown key is named in the field, as any other offending input.
  const path = [
    ...(issue?.path ?? []),
    ...(issue?.code === 'unrecognized_keys' ? issue.keys.slice(0, 1) : []),
  ];
  const field = [where, ...path].join('.');
  throw new AppError('NEXUS_ERR_VALIDATION', `${field}: ${issue?.message ?? 'invalid'}`, field);
}
