/**
 * Bearer tokens, checked the same way by every transport (gRPC metadata, HTTP headers): the value
 * of an `authorization` header must be `Bearer <token>` with one of the configured tokens.
 */
import { createHash, timingSafeEqual } from "node:crypto";

const digest = (token: string) => createHash("sha256").update(token).digest();

/**
 * Tokens are compared as SHA-256 digests with timingSafeEqual (constant time, whatever their
 * lengths), and every token is compared, so the time taken says nothing about which one nearly matched.
 */
export class BearerTokens {
  private readonly digests: Buffer[];

  constructor(tokens: readonly string[]) {
    this.digests = tokens.filter((t) => t.length > 0).map(digest);
    if (this.digests.length === 0) throw new Error("no bearer tokens given (empty list or file)");
  }

  /** Whether an `authorization` header value carries a valid token. */
  accepts(authorization: string | undefined): boolean {
    const match = /^Bearer (.+)$/i.exec(authorization ?? "");
    const offered = digest(match ? match[1] : "");
    let ok = false;
    for (const d of this.digests) ok = timingSafeEqual(d, offered) || ok;
    return ok && match !== null;
  }
}
