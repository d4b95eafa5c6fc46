/**
 * Lists the console offers (permissions, queue names) as the hub's OpenAPI document states them,
 * so the console never offers a value the hub would refuse, and never needs a release to learn a
 * new one.
 */

interface Schema {
  $ref?: string;
  enum?: string[];
  items?: Schema;
  properties?: Record<string, Schema>;
}
interface Operation {
  parameters?: { name: string; in: string; schema?: Schema }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
}
interface OpenApiDocument {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
}

let document: Promise<OpenApiDocument> | undefined;

function openApi(): Promise<OpenApiDocument> {
  document ??= fetch('/nexus/v3/openapi.json', { credentials: 'omit' }).then(
    res => res.json() as Promise<OpenApiDocument>,
  );
  return document;
}

const resolve = (doc: OpenApiDocument, schema: Schema | undefined): Schema | undefined =>
  schema?.$ref ? doc.components.schemas[schema.$ref.split('/').pop() ?? ''] : schema;

/** The permissions an API key may have (`POST /nexus/v3/apikeys`). */
export async function permissionNames(): Promise<string[]> {
  const doc = await openApi();
  const body = doc.paths['/nexus/v3/apikeys']?.post?.requestBody?.content['application/json'];
  return resolve(doc, body?.schema)?.properties?.permissions?.items?.enum ?? [];
}

/** The queues undelivered work is kept for (`GET /nexus/v3/undelivered?queue=`). */
export async function queueNames(): Promise<string[]> {
  const doc = await openApi();
  const parameter = doc.paths['/nexus/v3/undelivered']?.get?.parameters?.find(
    item => item.name === 'queue',
  );
  return resolve(doc, parameter?.schema)?.enum ?? [];
}
