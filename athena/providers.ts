/** The context an NLU provider's credentials are sealed under: a sealed value opens only for its own row. */
export const providerSecretContext = (tenantId: string, name: string) =>
  `athena-provider:${tenantId}:${name}`;
