import { z } from 'zod';
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

/** How deep request input may nest; no body of the API comes near it. */
export const MAX_INPUT_DEPTH = 32;

const NUL = '\u0000';
const NUL_MESSAGE = 'must not contain a NUL character (\\u0000)';
const shown = (key: string) => key.replaceAll(NUL, '\\u0000');

/**
 * Refuses input PostgreSQL cannot store or that no route expects, before any schema sees it: a
 * NUL character in any string or key (text and jsonb refuse `\u0000`), and nesting deeper than
 * {@link MAX_INPUT_DEPTH}. Throws a 400 `NEXUS_ERR_VALIDATION` naming the path (`body.data.text`).
 * Iterative, so hostile nesting cannot exhaust the stack.
 */
export function assertStorableInput(value: unknown, where: string): void {
  const stack: [unknown, string, number][] = [[value, where, 0]];
  while (stack.length > 0) {
    const [current, path, depth] = stack.pop() as [unknown, string, number];
    if (typeof current === 'string') {
      if (current.includes(NUL)) {
        throw new AppError('NEXUS_ERR_VALIDATION', `${path}: ${NUL_MESSAGE}`, path);
      }
      continue;
    }
    if (current === null || typeof current !== 'object' || Buffer.isBuffer(current)) continue;
    if (depth >= MAX_INPUT_DEPTH) {
      throw new AppError(
        'NEXUS_ERR_VALIDATION',
        `${path}: nested deeper than ${MAX_INPUT_DEPTH} levels`,
        path,
      );
    }
    for (const [key, child] of Object.entries(current)) {
      const childPath = `${path}.${shown(key)}`;
      if (key.includes(NUL)) {
        throw new AppError(
          'NEXUS_ERR_VALIDATION',
          `${childPath}: the name ${NUL_MESSAGE}`,
          childPath,
        );
      }
      stack.push([child, childPath, depth + 1]);
    }
  }
}

/**
 * A row id or cursor in a path or query: decimal digits only (no sign, exponent, hex or
 * spaces), within what both a PostgreSQL `bigint` and a JavaScript number hold exactly
 * (2^53 - 1). `min` is 1 for ids, 0 for cursors.
 */
export const rowNumber = (min: 0 | 1 = 1) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const text = String(value);
    const number = Number(text);
    if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(number) || number < min) {
      ctx.addIssue({
        code: 'custom',
        message: `must be an integer from ${min} to ${Number.MAX_SAFE_INTEGER}`,
      });
      return z.NEVER;
    }
    return number;
  });
