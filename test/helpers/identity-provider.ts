import { createServer, type Server } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair, type JWK } from 'jose';

/**
 * A local identity provider for operator tokens: serves its JWKS over HTTP, as a real issuer
 * does, and signs tokens with its private key.
 */
export interface IdentityProvider {
  readonly issuer: string;
  readonly jwksUrl: string;
  /** Signs a token; `claims` overrides the defaults (issuer, one hour of validity). */
  sign(
    claims: Record<string, unknown>,
    options?: { expiresIn?: string; issuer?: string },
  ): Promise<string>;
  /** Tokens signed by a key the JWKS does not publish. */
  signWithStrangerKey(claims: Record<string, unknown>): Promise<string>;
  close(): Promise<void>;
}

export async function startIdentityProvider(): Promise<IdentityProvider> {
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const stranger = await generateKeyPair('RS256');
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
  const server: Server = createServer((req, res) => {
    if (req.url === '/.well-known/jwks.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [jwk] }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const issuer = `http://127.0.0.1:${port}/`;

  const sign = (
    key: Parameters<SignJWT['sign']>[0],
    claims: Record<string, unknown>,
    expiresIn = '1h',
    iss = issuer,
  ) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
      .setIssuer(iss)
      .setIssuedAt()
      .setExpirationTime(expiresIn)
      .sign(key);

  return {
    issuer,
    jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    sign: (claims, options = {}) => sign(privateKey, claims, options.expiresIn, options.issuer),
    signWithStrangerKey: claims => sign(stranger.privateKey, claims),
    close: () => new Promise(resolve => server.close(() => resolve())),
  };
}
