/** What an identity string names: a user (id, subject, email, a rule's `user`) or a group (group, role, the admin group). */
export type IdentityKind = 'user' | 'group';

/** One `@`, something on both sides, no whitespace: the shape of an email address, nothing more. */
const EMAIL_SHAPE = /^[^@\s]+@[^@\s]+$/;

/**
 * The form in which identity strings are compared, everywhere: grants and tool rules, the
 * admin group, rate-limit keys and session ownership. Two identities are the same exactly
 * when their keys are equal (`===`); nothing else (no locale collation) decides.
 *
 * - Every string is put in Unicode NFC, so a composed `é` (U+00E9) and `e` + U+0301 are one
 *   name. NFC only joins what Unicode defines as canonically the same text: fullwidth letters
 *   (`ＭＣＰ-Ａｄｍｉｎ`), zero-width and other invisible characters, and look-alikes from other
 *   scripts stay distinct, so they can never pass for another name. (NFKC would fold fullwidth
 *   letters into ASCII, which is exactly the confusion to avoid.)
 * - A user string shaped like an email address (one `@` with text on both sides and no
 *   whitespace) is also lower-cased in ASCII only (A-Z to a-z): mail providers and identity
 *   providers treat addresses case-insensitively, and tokens carry `Alice@Example.com` as
 *   readily as `alice@example.com`. Other letters keep their case, so Unicode case mapping
 *   cannot make two different addresses one; at worst a mixed-case non-ASCII address fails to
 *   match, which refuses rather than grants. The rule looks at the string alone, so a grant's
 *   subject and a principal's id, subject and email are treated alike on both sides.
 * - Anything else (opaque subjects such as `00u1abcd`, group and role names) is case-sensitive:
 *   `mcp-admin` is not the group `MCP-Admin`.
 */
export function identityKey(value: string, kind: IdentityKind): string {
  const composed = value.normalize('NFC');
  if (kind === 'user' && EMAIL_SHAPE.test(composed)) return composed.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
  return composed;
}
