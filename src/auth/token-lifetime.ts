/**
 * Why a token's lifetime is refused, or undefined when it is acceptable. A shared-secret JWT
 * cannot be revoked, so its `exp` is the only end a leaked one has: the lifetime is `exp − iat`
 * (`exp − now` without `iat`), and `exp − now` is checked as well so an `iat` set in the future
 * cannot stretch the window (`clockToleranceSeconds` allows for an issuer's clock running ahead).
 * All times in seconds, as in the token.
 */
export function lifetimeProblem(claims: { exp: number; iat?: number | undefined }, nowSeconds: number, maxLifetimeSeconds: number, clockToleranceSeconds: number): string | undefined {
  const fromIssue = claims.exp - (claims.iat ?? nowSeconds);
  const fromNow = claims.exp - nowSeconds;
  if (fromIssue > maxLifetimeSeconds || fromNow > maxLifetimeSeconds + clockToleranceSeconds) {
    return `the token's lifetime (${Math.round(Math.max(fromIssue, fromNow))}s) exceeds the limit of ${maxLifetimeSeconds}s (gateway.auth.jwt.maxLifetimeSeconds)`;
  }
  return undefined;
}
