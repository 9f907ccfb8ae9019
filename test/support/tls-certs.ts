/**
 * Self-signed certificates for the name router's tests (real TLS servers behind the router): made with the openssl
 * CLI (EC P-256, quick) into a directory the caller owns.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface TestCert {
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
  /** as node's getPeerCertificate().fingerprint256 prints it */
  fingerprint256: string;
}

/** A certificate for `names` (the first is the CN; all are DNS subjectAltNames, wildcards allowed). */
export function makeSelfSignedCert(dir: string, label: string, names: string[]): TestCert {
  const certPath = path.join(dir, `${label}.crt`);
  const keyPath = path.join(dir, `${label}.key`);
  execFileSync(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', `/CN=${names[0]}`,
      '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
      '-keyout', keyPath, '-out', certPath,
    ],
    { stdio: 'ignore' },
  );
  const cert = readFileSync(certPath);
  return { certPath, keyPath, cert, key: readFileSync(keyPath), fingerprint256: new X509Certificate(cert).fingerprint256 };
}
