import { InvalidError, UnsupportedError } from "../errors";

/** A digest string that passed the grammar check (image-spec descriptor.md#digests). */
export type Digest = string & { readonly __digest: unique symbol };

const grammar = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const encodedByAlg: Record<string, RegExp> = {
  sha256: /^[a-f0-9]{64}$/,
  sha512: /^[a-f0-9]{128}$/,
};

/** Parse and check a digest. Registered algorithms must have the right encoded form; others must fit the grammar. */
export function parseDigest(s: unknown): Digest {
  if (typeof s !== "string" || !grammar.test(s)) throw new InvalidError(`invalid digest ${JSON.stringify(s)}`);
  const [alg, enc] = splitDigest(s);
  const re = encodedByAlg[alg];
  if (re && !re.test(enc)) throw new InvalidError(`invalid ${alg} digest ${JSON.stringify(s)}`);
  return s as Digest;
}

export function isDigest(s: unknown): s is Digest {
  try { parseDigest(s); return true; } catch { return false; }
}

export function splitDigest(d: string): [string, string] {
  const i = d.indexOf(":");
  return [d.slice(0, i), d.slice(i + 1)];
}

/** The sha256 hex of a digest boci can verify; other algorithms are unsupported for reading or writing blobs. */
export function sha256Hex(d: Digest): string {
  const [alg, enc] = splitDigest(d);
  if (alg !== "sha256") throw new UnsupportedError(`unsupported digest algorithm ${alg}`);
  return enc;
}

export function sha256Digest(data: string | Uint8Array): Digest {
  const h = new Bun.CryptoHasher("sha256");
  h.update(data);
  return ("sha256:" + h.digest("hex")) as Digest;
}
