// Certificates made at test time with Debian's `openssl` CLI: a root CA, optionally an
// intermediate, and server certificates for 127.0.0.1/localhost, each with a random serial.
import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Issued {
  cert: string;
  key: string;
  /** Upper-case hex, as X509Certificate.serialNumber gives it. */
  serial: string;
  fingerprint256: string;
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function describe(cert: string, key: string): Issued {
  const x = new X509Certificate(readFileSync(cert));
  return { cert, key, serial: x.serialNumber, fingerprint256: x.fingerprint256 };
}

/** A self-signed CA named `name` in `dir`. */
export function makeCa(dir: string, name: string): Issued {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  return describe(cert, key);
}

/** A certificate named `name`, signed by `issuer`: a server's (127.0.0.1, localhost) or, with `ca`, an intermediate CA's. */
export function issue(dir: string, name: string, issuer: Issued, ca = false): Issued {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`]);
  writeFileSync(ext, ca
    ? 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n'
    : 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(['x509', '-req', '-in', csr, '-CA', issuer.cert, '-CAkey', issuer.key, '-out', cert, '-days', '2',
    '-set_serial', '0x' + randomBytes(12).toString('hex').replace(/^0/, '1'), '-extfile', ext]);
  return describe(cert, key);
}

/** `key` encrypted with `passphrase` (PKCS#8, AES-256), written beside it. */
export function encryptKey(key: string, passphrase: string): string {
  const out = key.replace(/\.key$/, '.enc.key');
  openssl(['pkey', '-in', key, '-aes256', '-passout', `pass:${passphrase}`, '-out', out]);
  return out;
}

/** The base64 SHA-256 of the certificate's public key (SPKI), as Chromium's --ignore-certificate-errors-spki-list takes it. */
export function spkiHash(cert: string): string {
  const spki = new X509Certificate(readFileSync(cert)).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}
