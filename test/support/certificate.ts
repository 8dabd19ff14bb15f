/** @module A self-signed certificate for a test's HTTPS listener, made with openssl. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Certificate {
  cert: string;
  key: string;
  /** The certificate's PEM, for a client to trust as its CA. */
  pem: Buffer;
}

/**
 * Writes `<name>.crt` and `<name>.key` into `dir`: common name `name`, valid for the subject
 * alternative names given (`IP:127.0.0.1`, `DNS:pullcache.example`).
 */
export function selfSignedCertificate(
  dir: string,
  name: string,
  altNames: string[] = ['IP:127.0.0.1'],
): Certificate {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      `subjectAltName=${altNames.join(',')}`,
      '-keyout',
      key,
      '-out',
      cert,
    ],
    { stdio: 'ignore' },
  );
  return { cert, key, pem: readFileSync(cert) };
}
