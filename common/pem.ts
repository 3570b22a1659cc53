/** PEM certificates and keys, checked part by part so that errors name the bad file: for the server's TLS and the SDK's. */
import { X509Certificate, createPrivateKey } from "node:crypto";

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

const reason = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** The PEM certificates in `pem`, parsed; throws naming `label` when there is none or one is invalid. */
export function pemCertificates(pem: Buffer, label: string): X509Certificate[] {
  const blocks = pem.toString("utf8").match(PEM_CERTIFICATE);
  if (!blocks) throw new Error(`${label}: no PEM certificate (-----BEGIN CERTIFICATE-----) found`);
  return blocks.map((block, k) => {
    try {
      return new X509Certificate(block);
    } catch (e) {
      throw new Error(`${label}: certificate ${k + 1} is not valid: ${reason(e)}`);
    }
  });
}

/** Checks that `key` is a PEM private key matching the first certificate of `cert`; errors name the labels. */
export function checkPemKeyPair(cert: Buffer, key: Buffer, certLabel: string, keyLabel: string): void {
  const [leaf] = pemCertificates(cert, certLabel);
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw new Error(`${keyLabel}: not a valid PEM private key: ${reason(e)}`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new Error(`${keyLabel}: the private key does not match the certificate of ${certLabel}`);
}
