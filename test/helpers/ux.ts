import request from 'supertest';
import { createInboundProcessor } from '../../workers/processors/inbound.js';
import { provisionChatTenant } from './chat.js';
import type { Harness } from './harness.js';

/**
 * What the page tests share: a tenant whose chats are routed to its agent Alice (ready, with a
 * password to sign in), the inbound worker that routes them, and the desktop's side of the token
 * hand-over.
 */

export const PASSWORD = 'correct horse battery';

export async function setupDesk(h: Harness) {
  await h.startWorkers({
    processors: {
      inbound: createInboundProcessor({
        db: h.db,
        publisher: h.publisher,
        queues: h.queues,
        log: h.log,
      }),
    },
    select: ['inbound', 'maintenance'],
  });
  const api = await h.serve();
  const t = await provisionChatTenant(h, api.app, 'ux-tenant', { queue: false });
  const admin = { Authorization: `Bearer ${h.config.adminToken}`, 'x-ccid': t.tenant };
  await request(api.url)
    .put(`/nexus/v3/provisioning/queues/${t.tenant}/Sales`)
    .set(admin)
    .send({ endpoints: ['GlobalChatSwitchboard'], agents: [t.agent.id], offerTimeoutMs: 120_000 })
    .expect(201);
  await request(api.url)
    .put(`/nexus/v3/agents/${t.agent.id}/password`)
    .set(admin)
    .send({ password: PASSWORD })
    .expect(204);
  await request(api.url)
    .post('/nexus/v3/agent/presence')
    .set('Authorization', `Bearer ${t.agent.token}`)
    .send({ ready: true, capacity: 3 })
    .expect(200);
  return { api, t, admin };
}

/** The desktop's script: it answers the framed page's request for the agent's token. */
export const handsToken = (token: string, hub: string) => `addEventListener('message', e => {
  if (e.data && e.data.type === 'nexus:agent-token-request') {
    e.source.postMessage({ type: 'nexus:agent-token', token: ${JSON.stringify(token)} }, ${JSON.stringify(hub)});
  }
});`;
