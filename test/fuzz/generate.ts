import fc from 'fast-check';

/**
 * Requests for every operation of the hub's OpenAPI document, as fast-check arbitraries: values
 * valid to the operation's schemas, boundary values (lengths and numbers at and past their
 * limits, empty, enums' neighbours) and hostile ones (100k-character strings, 200-deep nesting,
 * `__proto__` / `constructor` / `prototype` keys, NUL characters and lone surrogates, invalid
 * UTF-8 bytes, wrong content types, missing bodies, bodies that are arrays, numbers or null).
 *
 * Generated requests are symbolic where they name the fuzz run's own objects: a `{{name}}`
 * placeholder (see {@link known}) in a path, query or body stands for the tenant, session,
 * interaction... the runner provisioned, and `credential` names the credentials to send, so one
 * shrunk counterexample still reads as what was sent (test/fuzz/run.ts fills them in).
 */

/** The part of an OpenAPI 3.1 document the generator reads. */
export interface OpenApiDocument {
  paths: Record<string, Record<string, OperationObject>>;
  components?: { schemas?: Record<string, JsonSchema> };
}

interface OperationObject {
  'x-permission'?: string;
  security?: unknown[];
  parameters?: { name: string; in: string; required?: boolean; schema?: JsonSchema }[];
  requestBody?: { content: Record<string, { schema?: JsonSchema }> };
}

/** A JSON Schema (2020-12, as zod-to-openapi writes it), read loosely. */
export type JsonSchema = { [key: string]: unknown };

interface Parameter {
  name: string;
  required: boolean;
  schema: JsonSchema;
}

export interface Operation {
  /** `POST /nexus/v3/apikeys/{id}`, as the document names it. */
  key: string;
  method: string;
  path: string;
  permission?: string;
  authenticated: boolean;
  params: Parameter[];
  query: Parameter[];
  body?: { schema: JsonSchema; form: boolean };
}

/** Which of the run's credentials a request carries. */
export type Credential =
  'admin' | 'agent' | 'chatKey' | 'smsKey' | 'client' | 'signed' | 'none' | 'bogus';

/** One generated request, before the runner fills in its placeholders and credentials. */
export interface FuzzRequest {
  method: string;
  /** The path with its parameters, percent-encoded (or not, when that is the hostile part). */
  path: string;
  /** The query string without `?`, possibly empty. */
  query: string;
  credential: Credential;
  /** Extra headers (after the credentials': an `x-ccid` here replaces theirs). */
  headers: Record<string, string>;
  contentType?: string;
  /** The body's bytes: text, or raw bytes (invalid UTF-8) given as an array of numbers. */
  body?: string | number[];
  /** What kind of input this is: valid, boundary or the hostile family it belongs to. */
  kind: string;
}

/** The run's own objects a request may name; the runner replaces `{{name}}` with the value. */
export const KNOWN = [
  'tenant',
  'victimTenant',
  'agentId',
  'victimAgentId',
  'apiKeyId',
  'victimApiKeyId',
  'sessionId',
  'interactionId',
  'channelId',
  'deliveryId',
] as const;
export type Known = (typeof KNOWN)[number];
export const known = (name: Known) => `{{${name}}}`;

/** The operations of the document, with their parameters and JSON body schema resolved. */
export function operationsOf(doc: OpenApiDocument): Operation[] {
  const resolve = refResolver(doc);
  const operations: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const parameters = (operation.parameters ?? []).map(parameter => ({
        name: parameter.name,
        in: parameter.in,
        required: parameter.required === true,
        schema: resolve(parameter.schema ?? {}),
      }));
      const content = operation.requestBody?.content;
      const json = content?.['application/json']?.schema;
      operations.push({
        key: `${method.toUpperCase()} ${path}`,
        method: method.toUpperCase(),
        path,
        permission: operation['x-permission'],
        authenticated: (operation.security?.length ?? 0) > 0,
        params: parameters.filter(parameter => parameter.in === 'path'),
        query: parameters.filter(parameter => parameter.in === 'query'),
        body: json
          ? {
              schema: resolve(json),
              form: content['application/x-www-form-urlencoded'] !== undefined,
            }
          : undefined,
      });
    }
  }
  return operations;
}

/** Inlines `$ref`s to `#/components/schemas/...` (the document has no recursive schemas). */
function refResolver(doc: OpenApiDocument): (schema: JsonSchema) => JsonSchema {
  const resolve = (schema: unknown, depth = 0): unknown => {
    if (depth > 32 || schema === null || typeof schema !== 'object') return schema;
    if (Array.isArray(schema)) return schema.map(item => resolve(item, depth + 1));
    const ref = (schema as JsonSchema).$ref;
    if (typeof ref === 'string') {
      const name = ref.replace('#/components/schemas/', '');
      return resolve(doc.components?.schemas?.[name] ?? {}, depth + 1);
    }
    return Object.fromEntries(
      Object.entries(schema).map(([key, value]) => [key, resolve(value, depth + 1)]),
    );
  };
  return schema => resolve(schema) as JsonSchema;
}

// --- Hostile values ---

const HUGE = 100_000;

/** Strings no field expects: huge, NUL, lone surrogates, injections, look-alikes of other types. */
export const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    'a\u0000b',
    '\uD800',
    'x\uDFFFy',
    '\uDBFF\uDFFF\uD800',
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    '../../../etc/passwd',
    "' OR 1=1 --",
    '"; DROP TABLE tenants; --',
    '%00',
    '%',
    '${7*7}{{7*7}}',
    '<script>alert(1)</script>',
    '\u202Eevil\u202C',
    '\r\nSet-Cookie: x=y',
    '-1',
    '0',
    '1e308',
    '-0',
    'NaN',
    'Infinity',
    '99999999999999999999999999',
    '9007199254740993',
    'null',
    'true',
    '[]',
    '{}',
    'ÿ',
    '😀'.repeat(5_000),
    'a'.repeat(HUGE),
    '\u0000'.repeat(1_000),
    'é'.repeat(HUGE / 2),
  ),
  fc
    .tuple(
      fc.constantFrom('a', '\uD800', '\u0000', ' ', '%', '9'),
      fc.integer({ min: 1, max: 300_000 }),
    )
    .map(([char, length]) => char.repeat(length)),
  fc.string({ unit: 'binary', maxLength: 64 }),
);

/** Nests `leaf` `depth` levels deep in arrays or objects. */
const nested = (depth: number, leaf: unknown, inArray: boolean): unknown => {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = inArray ? [value] : { a: value };
  return value;
};

/** An object whose own key is `__proto__` (JSON.parse makes it an own property, as a parser would). */
const protoObject = (key: string, value: unknown): Record<string, unknown> =>
  JSON.parse(`{${JSON.stringify(key)}: ${JSON.stringify(value) ?? 'null'}}`) as Record<
    string,
    unknown
  >;

/** Any JSON value of a type no field expects, or of a shape no schema allows. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: hostileString },
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1.5,
    -0,
    1e308,
    -1e308,
    Number.MAX_SAFE_INTEGER + 2,
    [],
    {},
    [null],
    ['a', 1, null],
    Array.from({ length: 10_000 }, () => 'x'),
    nested(200, 'deep', false),
    nested(200, 'deep', true),
    nested(31, 'deep', false),
    nested(32, 'deep', false),
    protoObject('__proto__', { polluted: true, isAdmin: true }),
    protoObject('constructor', { prototype: { polluted: true } }),
    { prototype: { polluted: true } },
  ),
  fc.jsonValue({ maxDepth: 3 }),
);

// --- Values from schemas ---

/** The run's phone number (its SMS channel) and others, for fields that must be numbers. */
export const FUZZ_NUMBER = '+18005550100';
const phone = fc.constantFrom(FUZZ_NUMBER, '+18005550199', '+447700900123', '+33612345678');

/**
 * Values that name the run's own objects or that a field's schema cannot say (a phone number is
 * a plain string to the document), by property name: half of the valid values come from here, so
 * valid requests get past the handlers' own checks.
 */
const FIELD_HINTS: Record<string, fc.Arbitrary<unknown>> = {
  to: phone,
  from: phone,
  device_address: phone,
  inbound_address: phone,
  channelId: fc.constant(FUZZ_NUMBER),
  endpoint: fc.constant('GlobalChatSwitchboard'),
  endpoints: fc.constant(['GlobalChatSwitchboard']),
  queue: fc.constant('Main'),
  agentId: fc.constant(`{{agentId}}`),
  interactionId: fc.constant(`{{interactionId}}`),
  replyTo: fc.constant(`{{interactionId}}`),
  tenant: fc.constant(`{{tenant}}`),
  provider: fc.constant('Async'),
  nickname: fc.constantFrom('Ann', 'Bob', 'Zoë'),
  permissions: fc.subarray(['nexus:consumer:chat', 'nexus:sms:webhook', 'nexus:provisioning:*']),
};

/** Bodies for operations whose schema is free-form (the chat widget's `data`), by path end. */
const BODY_EXAMPLES: [RegExp, fc.Arbitrary<unknown>][] = [
  [
    /\/chat\/sessions$/,
    fc.record({
      data: fc.record(
        {
          nickname: FIELD_HINTS.nickname as fc.Arbitrary<string>,
          endpoint: fc.constant('GlobalChatSwitchboard'),
          email: fc.constantFrom('ann@example.com', undefined),
          subject: fc.string({ maxLength: 40 }),
        },
        { requiredKeys: ['nickname', 'endpoint'] },
      ),
    }),
  ],
  [
    /\/chat\/sessions\/\{sessionId\}\/messages$/,
    fc.record({
      data: fc.record(
        {
          type: fc.constant('Text'),
          text: fc.string({ minLength: 1, maxLength: 200 }),
          clientMessageId: fc.uuid(),
        },
        { requiredKeys: ['type', 'text'] },
      ),
    }),
  ],
  [/\/read$/, fc.record({ data: fc.record({ seq: fc.integer({ min: 1, max: 20 }) }) })],
  [/\/read$/, fc.record({ seq: fc.integer({ min: 1, max: 20 }) })],
  [/\/typing$/, fc.record({ data: fc.record({ typing: fc.boolean() }) })],
  [/\/typing$/, fc.record({ typing: fc.boolean() })],
];

const typesOf = (schema: JsonSchema): string[] =>
  Array.isArray(schema.type)
    ? (schema.type as string[])
    : typeof schema.type === 'string'
      ? [schema.type]
      : [];

const number = (value: unknown): number | undefined =>
  typeof value === 'number' ? value : undefined;

/** An email address shaped to the document's address pattern. */
const email = fc
  .tuple(
    fc.stringMatching(/^[a-z0-9._+-]{1,20}$/),
    fc.constantFrom('example.com', 'mail.example.org'),
  )
  .map(([local, domain]) => `${local}@${domain}`);

/** Strings valid to a string schema (format, pattern, lengths, enum). */
function validString(schema: JsonSchema): fc.Arbitrary<string> {
  const min = number(schema.minLength) ?? 0;
  const max = Math.min(number(schema.maxLength) ?? 64, min + 64);
  switch (schema.format) {
    case 'uuid':
      return fc.uuid();
    case 'uri':
      return fc.webUrl();
    case 'date-time':
      return fc
        .date({
          min: new Date('2000-01-01T00:00:00Z'),
          max: new Date('2100-01-01T00:00:00Z'),
          noInvalidDate: true,
        })
        .map(date => date.toISOString());
    case 'email':
      return email;
    default:
  }
  if (typeof schema.pattern === 'string') {
    if (schema.pattern.includes('@')) return email;
    let pattern: RegExp;
    try {
      pattern = new RegExp(schema.pattern);
    } catch {
      return fc.string({ minLength: min, maxLength: max });
    }
    return fc
      .stringMatching(pattern)
      .filter(
        value => value.length >= min && value.length <= (number(schema.maxLength) ?? Infinity),
      );
  }
  return fc.string({ minLength: min, maxLength: max });
}

/** Strings at and just past a string schema's limits, and enums' neighbours. */
function boundaryString(schema: JsonSchema): fc.Arbitrary<string> {
  const lengths = new Set<number>([0, 1]);
  const min = number(schema.minLength);
  const max = number(schema.maxLength);
  if (min !== undefined) [min - 1, min].filter(n => n >= 0).forEach(n => lengths.add(n));
  if (max !== undefined) [max, max + 1].forEach(n => lengths.add(n));
  const options: fc.Arbitrary<string>[] = [
    fc
      .constantFrom(...lengths)
      .chain(length =>
        fc.constantFrom('a', 'Z', '9', '-', 'é', ' ').map(char => char.repeat(length)),
      ),
  ];
  const values = [...(Array.isArray(schema.enum) ? schema.enum : []), schema.const].filter(
    (value): value is string => typeof value === 'string',
  );
  if (values.length > 0) {
    options.push(
      fc
        .constantFrom(...values)
        .chain(value =>
          fc.constantFrom(
            value.toUpperCase(),
            value.toLowerCase(),
            `${value}x`,
            value.slice(0, -1),
            ` ${value}`,
            `${value}\u0000`,
          ),
        ),
    );
  }
  return fc.oneof(...options);
}

function boundaryNumber(schema: JsonSchema): fc.Arbitrary<unknown> {
  const values: unknown[] = [0, -1, 1, 0.5, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 1];
  for (const key of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) {
    const limit = number(schema[key]);
    if (limit !== undefined) values.push(limit - 1, limit, limit + 1, limit + 0.5, String(limit));
  }
  return fc.constantFrom(...values);
}

export type Mode = 'valid' | 'boundary' | 'hostile';

/**
 * A value for `schema`: valid to it, at its boundaries, or (in hostile mode, and for any part a
 * boundary run chooses) hostile. Optional properties come and go; a few unknown ones are added in
 * the non-valid modes.
 */
export function valueOf(schema: JsonSchema, mode: Mode, depth = 0): fc.Arbitrary<unknown> {
  if (mode === 'hostile') return hostileValue;
  const spoil = (arbitrary: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
    mode === 'boundary'
      ? fc.oneof({ weight: 6, arbitrary }, { weight: 1, arbitrary: hostileValue })
      : arbitrary;
  if ('const' in schema) return spoil(fc.constant(schema.const));
  if (Array.isArray(schema.enum) && schema.enum.length > 0) {
    return spoil(
      mode === 'boundary'
        ? fc.oneof(fc.constantFrom(...(schema.enum as unknown[])), boundaryString(schema))
        : fc.constantFrom(...(schema.enum as unknown[])),
    );
  }
  for (const key of ['anyOf', 'oneOf']) {
    const options = schema[key];
    if (Array.isArray(options) && options.length > 0) {
      return fc.oneof(...options.map(option => valueOf(option as JsonSchema, mode, depth + 1)));
    }
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length > 0) {
    const merged = Object.assign({}, ...(schema.allOf as JsonSchema[])) as JsonSchema;
    return valueOf(merged, mode, depth + 1);
  }
  const types = typesOf(schema);
  const options: fc.Arbitrary<unknown>[] = [];
  if (types.length === 0) {
    // Any value: the hub's free-form fields (user data, service data).
    options.push(fc.jsonValue({ maxDepth: 2 }));
  }
  for (const type of types) {
    switch (type) {
      case 'null':
        options.push(fc.constant(null));
        break;
      case 'boolean':
        options.push(
          mode === 'boundary' ? fc.constantFrom(true, false, 'true', 0, 1) : fc.boolean(),
        );
        break;
      case 'integer':
      case 'number': {
        const min = number(schema.minimum) ?? (number(schema.exclusiveMinimum) ?? -1_000_000) + 1;
        const max = number(schema.maximum) ?? (number(schema.exclusiveMaximum) ?? 1_000_000) - 1;
        options.push(
          mode === 'boundary'
            ? boundaryNumber(schema)
            : type === 'integer'
              ? fc.integer({
                  min: Math.max(min, Number.MIN_SAFE_INTEGER),
                  max: Math.min(max, Number.MAX_SAFE_INTEGER),
                })
              : fc.double({ min, max, noNaN: true, noDefaultInfinity: true }),
        );
        break;
      }
      case 'string':
        options.push(
          mode === 'boundary'
            ? fc.oneof(validString(schema), boundaryString(schema))
            : validString(schema),
        );
        break;
      case 'array': {
        const items = (schema.items as JsonSchema | undefined) ?? {};
        const minItems = number(schema.minItems) ?? 0;
        const maxItems = Math.min(number(schema.maxItems) ?? 3, minItems + 3);
        const valid =
          depth > 6
            ? fc.constant([])
            : fc.array(valueOf(items, 'valid', depth + 1), {
                minLength: minItems,
                maxLength: maxItems,
              });
        if (mode === 'boundary') {
          const limit = number(schema.maxItems);
          options.push(
            fc.oneof(
              valid,
              fc.constant([]),
              ...(limit !== undefined && limit <= 2_000
                ? [
                    valueOf(items, 'valid', depth + 1).map(item =>
                      Array.from({ length: limit + 1 }, () => item),
                    ),
                  ]
                : []),
              depth > 6
                ? fc.constant([])
                : fc.array(valueOf(items, 'boundary', depth + 1), { maxLength: 3 }),
            ),
          );
        } else options.push(valid);
        break;
      }
      case 'object':
        options.push(objectOf(schema, mode, depth));
        break;
      default:
        options.push(fc.jsonValue({ maxDepth: 2 }));
    }
  }
  return spoil(options.length === 1 ? (options[0] as fc.Arbitrary<unknown>) : fc.oneof(...options));
}

function objectOf(schema: JsonSchema, mode: Mode, depth: number): fc.Arbitrary<unknown> {
  const properties = (schema.properties as Record<string, JsonSchema> | undefined) ?? {};
  const required = new Set((schema.required as string[] | undefined) ?? []);
  if (depth > 6) return fc.constant({});
  const entries = Object.entries(properties).map(([name, property]) => {
    const generated = valueOf(property, mode === 'boundary' ? 'boundary' : 'valid', depth + 1);
    const hint = FIELD_HINTS[name];
    const value = hint ? fc.oneof(hint, generated) : generated;
    // A required property is sometimes missing at the boundary; an optional one comes and goes.
    const present = required.has(name)
      ? mode === 'boundary'
        ? fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, fc.constant(false))
        : fc.constant(true)
      : fc.boolean();
    return fc.tuple(fc.constant(name), present, value);
  });
  const additional =
    schema.additionalProperties && typeof schema.additionalProperties === 'object'
      ? fc.dictionary(
          fc.stringMatching(/^[a-z]{1,8}$/),
          valueOf(schema.additionalProperties as JsonSchema, 'valid', depth + 1),
          { maxKeys: 3 },
        )
      : fc.constant({});
  const extra =
    mode === 'boundary'
      ? fc.oneof(
          { weight: 3, arbitrary: fc.constant([] as [string, unknown][]) },
          fc.array(
            fc.tuple(
              fc.constantFrom(
                '__proto__',
                'constructor',
                'prototype',
                'extra',
                '',
                '\u0000',
                'a.b',
                '$where',
              ),
              hostileValue,
            ),
            {
              maxLength: 2,
            },
          ),
        )
      : fc.constant([] as [string, unknown][]);
  return fc.tuple(fc.tuple(...entries), additional, extra).map(([fields, more, extras]) => {
    const object: Record<string, unknown> = { ...more };
    for (const [name, present, value] of fields) {
      if (present) object[name] = value;
    }
    for (const [name, value] of extras) {
      Object.defineProperty(object, name, {
        value,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return object;
  });
}

// --- Requests ---

/** Values of the run's own objects for a path parameter of this name, where they fit. */
function knownValues(operation: Operation, name: string): string[] {
  // PATCH and DELETE name a victim tenant, agent or key, so the fuzz never locks itself out.
  const destructive = operation.method === 'DELETE' || operation.method === 'PATCH';
  const path = operation.path;
  switch (name) {
    case 'ccid':
      return destructive ? [known('victimTenant')] : [known('tenant')];
    case 'sessionId':
      return [known('sessionId')];
    case 'channelId':
      return [known('channelId')];
    case 'serviceName':
      return destructive
        ? ['WebhookTransportTarget-victim']
        : ['Async', 'WebhookTransportTarget-crm'];
    case 'name':
      if (path.includes('/webhooks/')) return ['crm'];
      return destructive ? ['Victim'] : ['Main', 'GlobalChatSwitchboard', 'chat.SMS_Main'];
    case 'campaign':
      return ['spring'];
    case 'address':
      return ['ann@example.com'];
    case 'id':
      if (path.includes('/provisioning/tenants/')) {
        return destructive ? [known('victimTenant')] : [known('tenant')];
      }
      if (path.includes('/agents/')) {
        return destructive ? [known('victimAgentId')] : [known('agentId')];
      }
      if (path.includes('/apikeys/')) {
        return destructive ? [known('victimApiKeyId')] : [known('apiKeyId')];
      }
      if (path.includes('/deliveries/')) return [known('deliveryId')];
      if (path.includes('/interactions/')) return [known('interactionId')];
      return [known('interactionId'), '1'];
    default:
      return [];
  }
}

/** Percent-encodings a URL decoder refuses or that decode to something hostile. */
const hostileSegment = fc.constantFrom(
  '%FF',
  '%C0%80',
  '%E0%A4%A',
  '%',
  '%zz',
  '%00',
  '%ED%A0%80',
  '..',
  '.',
  '%2e%2e%2f',
  'a%2Fb',
  '%20',
  '~',
);

function pathOf(operation: Operation, mode: Mode): fc.Arbitrary<string> {
  const segments = operation.params.map(parameter => {
    const knownOnes = knownValues(operation, parameter.name);
    const encoded = (arbitrary: fc.Arbitrary<unknown>) =>
      arbitrary.map(value => encode(String(value)));
    const options: fc.WeightedArbitrary<string>[] = [];
    if (knownOnes.length > 0) {
      options.push({ weight: mode === 'valid' ? 8 : 4, arbitrary: fc.constantFrom(...knownOnes) });
    }
    options.push({
      weight: 2,
      arbitrary: encoded(valueOf(parameter.schema, mode === 'hostile' ? 'boundary' : mode)),
    });
    if (mode !== 'valid') {
      options.push({
        weight: 1,
        arbitrary: encoded(hostileString.filter(value => value.length < 10_000)),
      });
      options.push({ weight: 1, arbitrary: hostileSegment });
    }
    return fc.tuple(fc.constant(parameter.name), fc.oneof(...options));
  });
  return fc.tuple(...segments).map(values => {
    let path = operation.path;
    for (const [name, value] of values) {
      path = path.replace(`{${name}}`, value === '' ? '%20' : value);
    }
    return path;
  });
}

/** `encodeURIComponent`, but a lone surrogate goes as the bytes UTF-8 replaces it with. */
export function encode(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return [...Buffer.from(value, 'utf8')]
      .map(byte => `%${byte.toString(16).padStart(2, '0')}`)
      .join('');
  }
}

const encodeQueryValue = (value: unknown): string =>
  encode(typeof value === 'string' ? value : (JSON.stringify(value) ?? ''));

function queryOf(operation: Operation, mode: Mode): fc.Arbitrary<string> {
  const parameters = operation.query.map(parameter =>
    fc.tuple(
      fc.constant(parameter.name),
      parameter.required && mode === 'valid' ? fc.constant(true) : fc.boolean(),
      valueOf(parameter.schema, mode === 'hostile' ? 'boundary' : mode).filter(
        value => typeof value !== 'string' || value.length < 20_000,
      ),
    ),
  );
  const extra =
    mode === 'valid'
      ? fc.constant([] as string[])
      : fc.array(
          fc.constantFrom(
            '__proto__=x',
            '__proto__[polluted]=1',
            'constructor[prototype][x]=1',
            'a=1&a=2',
            'limit=1&limit=2',
            'since=1&since=2',
            '%FF=%FF',
            '=',
            '&&&',
            'x=%00',
            'x=%',
            `x=${'a'.repeat(HUGE)}`,
            'cursor=-1',
            'limit=99999999999999999999',
          ),
          { maxLength: 2 },
        );
  return fc
    .tuple(fc.tuple(...parameters), extra)
    .map(([values, extras]) =>
      [
        ...values
          .filter(([, present]) => present)
          .map(([name, , value]) => `${encode(name)}=${encodeQueryValue(value)}`),
        ...extras,
      ].join('&'),
    );
}

/** `data[nickname]=Ann` form fields of an object (bracketed, as the chat widget sends them). */
export function formOf(value: unknown, prefix = ''): string {
  if (value === null || typeof value !== 'object') {
    return prefix ? `${encode(prefix)}=${encode(String(value))}` : encode(String(value));
  }
  return Object.entries(value)
    .map(([key, child]) => formOf(child, prefix ? `${prefix}[${key}]` : key))
    .filter(Boolean)
    .join('&');
}

/** Bodies that are broken as a whole: not JSON, not UTF-8, not an object, too deep, mislabelled. */
type Body = Pick<FuzzRequest, 'contentType' | 'body'> & { kind: string };

const hostileBody: fc.Arbitrary<Body> = fc.oneof(
  fc.constantFrom(
    { kind: 'json-array', contentType: 'application/json', body: '[]' },
    { kind: 'json-number', contentType: 'application/json', body: '42' },
    { kind: 'json-null', contentType: 'application/json', body: 'null' },
    { kind: 'json-string', contentType: 'application/json', body: '"text"' },
    { kind: 'json-broken', contentType: 'application/json', body: '{"a":' },
    { kind: 'json-empty', contentType: 'application/json', body: '' },
    {
      kind: 'json-proto',
      contentType: 'application/json',
      body: '{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}',
    },
    { kind: 'json-duplicate-keys', contentType: 'application/json', body: '{"a":1,"a":{"b":2}}' },
    {
      kind: 'json-deep',
      contentType: 'application/json',
      body: `${'['.repeat(200)}${']'.repeat(200)}`,
    },
    {
      kind: 'json-deep',
      contentType: 'application/json',
      body: `${'{"a":'.repeat(200)}1${'}'.repeat(200)}`,
    },
    {
      kind: 'json-huge-string',
      contentType: 'application/json',
      body: JSON.stringify({ data: 'a'.repeat(HUGE) }),
    },
    { kind: 'json-utf16', contentType: 'application/json; charset=utf-16', body: '{}' },
    { kind: 'json-bad-charset', contentType: 'application/json; charset=klingon', body: '{}' },
    { kind: 'text-plain', contentType: 'text/plain', body: '{"text":"hello"}' },
    {
      kind: 'form',
      contentType: 'application/x-www-form-urlencoded',
      body: 'a=1&b[c]=2&__proto__[x]=1',
    },
    { kind: 'form-nul', contentType: 'application/x-www-form-urlencoded', body: 'text=a%00b' },
    {
      kind: 'form-bad-percent',
      contentType: 'application/x-www-form-urlencoded',
      body: 'text=%E0%A4%A&x=%',
    },
    {
      kind: 'form-many',
      contentType: 'application/x-www-form-urlencoded',
      body: Array.from({ length: 2_000 }, (_, i) => `f${i}=x`).join('&'),
    },
    {
      kind: 'multipart',
      contentType: 'multipart/form-data; boundary=zz',
      body: '--zz\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--zz--\r\n',
    },
    { kind: 'multipart-no-boundary', contentType: 'multipart/form-data', body: 'garbage' },
    { kind: 'xml', contentType: 'application/xml', body: '<a>b</a>' },
    { kind: 'no-content-type', contentType: undefined, body: '{"a":1}' },
    { kind: 'missing-body', contentType: undefined, body: undefined },
    { kind: 'missing-body-json', contentType: 'application/json', body: undefined },
  ),
  fc.array(fc.integer({ min: 0x80, max: 0xff }), { minLength: 1, maxLength: 16 }).map(bytes => ({
    kind: 'invalid-utf8',
    contentType: 'application/json',
    body: [...Buffer.from('{"text":"'), ...bytes, ...Buffer.from('"}')],
  })),
  fc
    .array(fc.integer({ min: 0, max: 0xff }), { minLength: 1, maxLength: 64 })
    .map(bytes => ({ kind: 'random-bytes', contentType: 'application/json', body: bytes })),
);

/** Header values a client can send (Node refuses control characters): Latin-1, long, empty. */
const headerValue = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    'ÿþ',
    '\u00e9t\u00e9',
    '../x',
    '*',
    'a'.repeat(8_000),
    '__proto__',
    '-1',
  ),
  fc.stringMatching(/^[\x20-\x7e\x80-\xff]{0,64}$/),
);

/** Headers the hub reads besides the credentials, hostile or mislabelled. */
const headersOf: fc.Arbitrary<Record<string, string>> = fc.oneof(
  { weight: 3, arbitrary: fc.constant({}) },
  fc.record(
    {
      'x-ccid': fc.oneof(fc.constantFrom(known('tenant'), known('victimTenant')), headerValue),
      'x-request-id': headerValue,
      'content-encoding': fc.constantFrom(
        'gzip',
        'deflate',
        'br',
        'identity',
        'zstd',
        'gzip, gzip',
      ),
      'x-b3-traceid': headerValue,
      'x-forwarded-for': fc.constantFrom('1.2.3.4', 'not an ip', '::1, 10.0.0.1', ''),
      accept: fc.constantFrom('text/html', '*/*', 'application/xml', ''),
    },
    { requiredKeys: [] },
  ),
);

/** Which credentials reach the operation's handler. */
function credentialOf(operation: Operation): Credential {
  const { permission, path } = operation;
  if (permission === 'nexus:agent:*') return 'agent';
  if (permission === 'nexus:consumer:chat') return 'chatKey';
  if (permission === 'nexus:sms:webhook') return 'smsKey';
  if (permission) return 'admin';
  if (operation.authenticated) return 'admin';
  if (path.includes('{sessionId}')) return 'client';
  if (path.startsWith('/nexus/v3/channels/{channelId}')) return 'signed';
  if (path === '/auth/v3/agent/renew') return 'agent';
  return 'none';
}

/**
 * Requests for one operation: mostly with credentials that pass (so they reach validation and
 * the handler); some without or with wrong ones.
 */
export function requestsFor(operation: Operation): fc.Arbitrary<FuzzRequest> {
  const right = credentialOf(operation);
  const credential: fc.Arbitrary<Credential> = fc.oneof(
    { weight: 18, arbitrary: fc.constant(right) },
    {
      weight: 1,
      arbitrary: fc.constantFrom<Credential>(
        'none',
        'bogus',
        'admin',
        'agent',
        'chatKey',
        'client',
      ),
    },
  );
  const takesBody = operation.body !== undefined;
  const form = operation.body?.form === true;
  const bodyOf = (mode: Mode): fc.Arbitrary<Body> => {
    if (!operation.body) {
      return fc.constant<Body>({ kind: mode, contentType: undefined, body: undefined });
    }
    const schema = operation.body.schema;
    const examples = BODY_EXAMPLES.filter(([pattern]) => pattern.test(operation.path)).map(
      ([, example]) => example,
    );
    const generated = valueOf(schema, mode === 'hostile' ? 'boundary' : mode);
    return (
      mode === 'valid' && examples.length > 0 ? fc.oneof(...examples, generated) : generated
    ).chain(value =>
      form && mode !== 'hostile'
        ? fc.constantFrom<Body>(
            { kind: mode, contentType: 'application/json', body: JSON.stringify(value) },
            {
              kind: `${mode}-form`,
              contentType: 'application/x-www-form-urlencoded',
              body: formOf(value),
            },
          )
        : fc.constant<Body>({
            kind: mode,
            contentType: 'application/json',
            body: JSON.stringify(value) ?? 'null',
          }),
    );
  };
  const request = (mode: Mode, body: fc.Arbitrary<Body>) =>
    fc
      .record({
        credential,
        path: pathOf(operation, mode),
        query: queryOf(operation, mode),
        headers: mode === 'valid' ? fc.constant({}) : headersOf,
        body,
      })
      .map(({ credential, path, query, headers, body }): FuzzRequest => ({
        method: operation.method,
        path,
        query,
        credential,
        headers,
        contentType: body.contentType,
        body: body.body,
        kind: body.kind,
      }));
  return fc.oneof(
    { weight: takesBody ? 4 : 6, arbitrary: request('valid', bodyOf('valid')) },
    { weight: 4, arbitrary: request('boundary', bodyOf('boundary')) },
    {
      weight: 2,
      arbitrary: request(
        'hostile',
        takesBody
          ? fc.oneof(
              bodyOf('hostile'),
              valueOf({}, 'hostile').map((value): Body => ({
                kind: 'hostile',
                contentType: 'application/json',
                body: JSON.stringify(value) ?? 'null',
              })),
            )
          : bodyOf('hostile'),
      ),
    },
    { weight: takesBody ? 3 : 1, arbitrary: request('boundary', hostileBody) },
  );
}

// --- Socket events ---

/** The events the agent and customer namespaces handle, and names they do not. */
export const SOCKET_EVENTS = {
  '/agent': ['token', 'presence', 'subscribe', 'message', 'typing', 'read'],
  '/chat': ['message', 'typing', 'read'],
} as const;
const UNKNOWN_EVENTS = [
  'unknown',
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  'error',
  'x'.repeat(1_000),
];

export interface SocketEmit {
  namespace: '/agent' | '/chat';
  event: string;
  payload: unknown[];
}

const socketPayload: fc.Arbitrary<unknown> = fc.oneof(
  hostileValue,
  fc.record(
    {
      text: fc.oneof(fc.string(), hostileString),
      clientMessageId: fc.oneof(fc.string(), hostileString),
      interactionId: fc.oneof(fc.uuid(), fc.constant(known('interactionId')), hostileString),
      seq: fc.oneof(fc.integer(), hostileValue),
      token: fc.oneof(fc.string(), hostileString),
      presence: fc.oneof(fc.constantFrom('available', 'away', 'offline', 'busy'), hostileString),
      interactionIds: fc.oneof(fc.array(fc.uuid(), { maxLength: 3 }), hostileValue),
      ready: fc.oneof(fc.boolean(), hostileValue),
      capacity: fc.oneof(fc.integer({ min: -5, max: 200 }), hostileValue),
      lastSeq: fc.oneof(fc.integer(), hostileValue),
    },
    { requiredKeys: [] },
  ),
);

export function socketEmits(): fc.Arbitrary<SocketEmit> {
  return fc.constantFrom<'/agent' | '/chat'>('/agent', '/chat').chain(namespace =>
    fc.record({
      namespace: fc.constant(namespace),
      event: fc.oneof(
        { weight: 5, arbitrary: fc.constantFrom(...SOCKET_EVENTS[namespace]) },
        fc.constantFrom(...UNKNOWN_EVENTS),
      ),
      payload: fc.array(socketPayload, { minLength: 0, maxLength: 3 }),
    }),
  );
}
