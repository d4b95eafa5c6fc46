import { hkdfSync } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';

/**
 * Tokens the hub signs itself (HS256, with a key derived from NEXUS_SECRET_KEY):
 * - the customer's `clientToken` (the guide's widget sends it as `x-nexus-client-key`), naming
 *   the session, the participant and the tenant. It does not expire: an async chat is restored
 *   with it days later; ending the session is what stops it.
 * - agent tokens (sign-in, renewal, an operator's issue), valid for `agentTokenTtlSeconds`
 *   (NEXUS_AGENT_TOKEN_TTL_SECONDS).
 */
const clientClaims = z.object({
  typ: z.literal('client'),
  sessionId: z.string().uuid(),
  participantId: z.string().uuid(),
  tenant: z.string(),
  /** Lets a message be accepted without reading the session first. */
  interactionId: z.string().uuid().optional(),
});
const agentClaims = z.object({
  typ: z.literal('agent'),
  sub: z.string().uuid(),
  tenant: z.string(),
  /** Seconds since the epoch; every agent token the hub signs has one. */
  exp: z.number().int(),
});

export type ClientToken = z.infer<typeof clientClaims>;
export type AgentToken = z.infer<typeof agentClaims>;

const ISSUER = 'nexus';

export class TokenService {
  private readonly key: Uint8Array;
  /**
   * Client tokens verified before (they never expire and cannot change): sending a message is
   * the hot path, and an HMAC verification through WebCrypto costs more than the rest of it.
   */
  private readonly verifiedClients = new LRUCache<string, ClientToken>({ max: 50_000 });

  constructor(
    secretKey: Buffer,
    private readonly agentTokenTtlSeconds = 12 * 3600,
  ) {
    this.key = new Uint8Array(hkdfSync('sha256', secretKey, 'nexus', 'nexus-session-tokens', 32));
  }

  signClient(claims: Omit<ClientToken, 'typ'>): Promise<string> {
    return new SignJWT({ ...claims, typ: 'client' })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ISSUER)
      .setIssuedAt()
      .sign(this.key);
  }

  signAgent(agentId: string, tenant: string): Promise<{ token: string; expiresAt: string }> {
    const expires = Math.floor(Date.now() / 1000) + this.agentTokenTtlSeconds;
    return new SignJWT({ typ: 'agent', tenant })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(ISSUER)
      .setSubject(agentId)
      .setIssuedAt()
      .setExpirationTime(expires)
      .sign(this.key)
      .then(token => ({ token, expiresAt: new Date(expires * 1000).toISOString() }));
  }

  /** The client token's claims, or undefined when it is not one of ours. */
  async verifyClient(token: string): Promise<ClientToken | undefined> {
    const known = this.verifiedClients.get(token);
    if (known) return known;
    const claims = await this.verify(token, clientClaims);
    if (claims) this.verifiedClients.set(token, claims);
    return claims;
  }

  /** The agent token's claims, or undefined when it is not one of ours or has expired. */
  async verifyAgent(token: string): Promise<AgentToken | undefined> {
    return this.verify(token, agentClaims);
  }

  private async verify<T>(token: string, schema: z.ZodType<T>): Promise<T | undefined> {
    if (token.length > 4_096) return undefined;
    try {
      const { payload } = await jwtVerify(token, this.key, {
        issuer: ISSUER,
        algorithms: ['HS256'],
      });
      const parsed = schema.safeParse(payload);
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }
}
