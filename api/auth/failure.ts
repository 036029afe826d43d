/**
 * An authentication failure an Authenticator throws to say why (expired, wrong
 * audience, ...): the auth hook answers 401 with the message and an RFC 6750
 * `WWW-Authenticate: Bearer error="invalid_token"` header.
 */
export class AuthFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AuthFailure";
  }
}

/** The WWW-Authenticate value for a token that was given but refused. */
export function invalidTokenChallenge(description: string): string {
  const safe = description.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, "?");
  return `Bearer realm="cirrus", error="invalid_token", error_description="${safe}"`;
}
