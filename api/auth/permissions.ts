/**
 * The permission catalogue. An API key carries some of these; operator tokens map to them (see
 * docs/permissions.md). A permission ending in `:*` grants every permission under its prefix;
 * `nexus:cluster:*` grants every permission on every tenant.
 */
export const PERMISSIONS = {
  'nexus:consumer:chat': 'Customer chat: open chat sessions and talk in them (web widgets, apps).',
  'nexus:designer:chat':
    'Designer and bot applications: read and act on the chat interactions of the tenant.',
  'nexus:agent:*': 'The agent API of the tenant: agent tokens and operator JWTs with role agent.',
  'nexus:provisioning:*': 'Provisioning of the tenant: services, channels and its API keys.',
  'nexus:sms:webhook': 'SMS aggregators: inbound messages (MO) and delivery receipts.',
  'nexus:thirdparty:webhook':
    'Third-party messaging (Async) aggregators: inbound messages, receipts and media.',
  'nexus:cluster:*':
    'Everything, on every tenant: cluster keys (`tenant: "*"`) and cluster operators.',
} as const;

export type Permission = keyof typeof PERMISSIONS;
export const PERMISSION_NAMES = Object.keys(PERMISSIONS) as Permission[];
export const CLUSTER: Permission = 'nexus:cluster:*';
export const AGENT: Permission = 'nexus:agent:*';

export const isPermission = (value: string): value is Permission =>
  Object.hasOwn(PERMISSIONS, value);

/** Whether `granted` (a key's or token's permissions) includes `needed`. */
export function grants(granted: readonly string[], needed: Permission): boolean {
  return granted.some(
    permission =>
      permission === needed ||
      permission === CLUSTER ||
      (permission.endsWith(':*') && needed.startsWith(permission.slice(0, -1))),
  );
}
