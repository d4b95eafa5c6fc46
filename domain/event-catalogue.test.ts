import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EVENT_DATA, OPERATIONAL_EVENT_DATA } from './event-catalogue.js';

/** The section of a docs page under `## <heading>`, up to the next `## `. */
function section(page: string, heading: string): string {
  const text = readFileSync(new URL(`../docs/${page}`, import.meta.url), 'utf8');
  const found = text.split(/^## /m).find(part => part.startsWith(`${heading}\n`));
  if (!found) throw new Error(`docs/${page} has no section "## ${heading}"`);
  return found;
}

/** The top-level keys of a documented shape: `{a, b: {c, d}, e}` → a, b, e. */
function topLevelKeys(shape: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let current = '';
  for (const char of shape.slice(1, -1)) {
    if (char === '{') depth++;
    if (char === '}') depth--;
    if (char === ',' && depth === 0) {
      keys.push(current);
      current = '';
    } else current += char;
  }
  keys.push(current);
  return keys.map(key => key.split(':')[0]!.trim()).filter(Boolean);
}

/** Each row of the section's type table: the type and the keys of its documented `data`. */
function documentedEvents(page: string, heading: string): Record<string, string[]> {
  const rows = [
    ...section(page, heading).matchAll(/^\| `([a-z]+(?:\.[a-z]+)*)` +\| `(\{.*?\})`/gm),
  ];
  return Object.fromEntries(rows.map(row => [row[1], topLevelKeys(row[2]!).sort()]));
}

/** A schema's keys; a union's are every option's (an event whose shape depends on its channel). */
const keysOf = (schema: z.ZodTypeAny): string[] =>
  schema instanceof z.ZodUnion
    ? [...new Set((schema.options as z.ZodTypeAny[]).flatMap(keysOf))]
    : Object.keys((schema as z.AnyZodObject).shape);

const catalogued = (schemas: Record<string, z.ZodTypeAny>) =>
  Object.fromEntries(
    Object.entries(schemas).map(([type, schema]) => [type, keysOf(schema).sort()]),
  );

describe('event catalogue docs', () => {
  it('docs/events.md lists exactly the interaction event types, each with its data fields', () => {
    expect(documentedEvents('events.md', 'Events')).toEqual(catalogued(EVENT_DATA));
  });

  it('docs/webhooks.md lists exactly the operational event types, each with its data fields', () => {
    expect(documentedEvents('webhooks.md', 'Operational events')).toEqual(
      catalogued(OPERATIONAL_EVENT_DATA),
    );
  });

  it('reads nested shapes by their top-level keys', () => {
    expect(topLevelKeys('{agent: {id, nickname}, queue, by: participant}')).toEqual([
      'agent',
      'queue',
      'by',
    ]);
  });
});
