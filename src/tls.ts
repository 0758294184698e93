// Server TLS material: reads the certificate, key and CA chain named by the TLS_* settings,
// checks them in JS (uWebSockets.js only says "App construction failed", or serves nothing, on a
// bad file) and lays them out the way its SSLApp reads them: by file name.
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AppOptions } from 'uWebSockets.js';
import type { Config } from './config.js';

type TlsSettings = Pick<Config, 'tlsCertFile' | 'tlsKeyFile' | 'tlsKeyPassphrase' | 'tlsCaFile'>;

export class TlsError extends Error {
  override name = 'TlsError';
}

/** What a client sees of the served certificate (logged at start-up and after each reload). */
export interface CertificateInfo {
  subject: string;
  serial: string;
  fingerprint256: string;
  validTo: string;
  /** Certificates sent after the leaf (from TLS_CERT_FILE after its first, then TLS_CA_FILE). */
  chainLength: number;
}

interface TlsMaterial {
  /** For uWS.SSLApp: the checked key, and the checked chain copied into a private file. */
  options: AppOptions;
  info: CertificateInfo;
  /** Removes the private copy of the chain, once uWebSockets.js has read it. */
  dispose(): void;
}

/** Server TLS is on when both files are set (config.ts refuses one without the other). */
export function tlsEnabled(config: TlsSettings): boolean {
  return config.tlsCertFile !== '' && config.tlsKeyFile !== '';
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

function read(setting: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EACCES' ? 'permission denied' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw new TlsError(`${setting} ${file} cannot be read: ${why}`);
  }
}

function certificates(setting: string, file: string, pem: Buffer): { pem: string[]; parsed: X509Certificate[] } {
  const blocks = pem.toString('latin1').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new TlsError(`${setting} ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  const parsed = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (e) {
      throw new TlsError(`${setting} ${file}: certificate ${i + 1} cannot be parsed (${(e as Error).message})`);
    }
  });
  return { pem: blocks, parsed };
}

function privateKey(file: string, pem: Buffer, passphrase: string): KeyObject {
  // OpenSSL 3 reports a missing passphrase as "interrupted or cancelled": say it plainly.
  const encrypted = /-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED/.test(pem.toString('latin1'));
  if (encrypted && passphrase === '') throw new TlsError(`TLS_KEY_FILE (--tls-key-file) ${file} is encrypted: set TLS_KEY_PASSPHRASE`);
  try {
    return createPrivateKey({ key: pem, format: 'pem', ...(passphrase !== '' ? { passphrase } : {}) });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (encrypted) {
      throw new TlsError(`TLS_KEY_PASSPHRASE (--tls-key-passphrase) does not decrypt TLS_KEY_FILE (--tls-key-file) ${file}`);
    }
    throw new TlsError(`TLS_KEY_FILE (--tls-key-file) ${file} is not a PEM private key (${err.message})`);
  }
}

/**
 * Reads and checks the files: each readable, the certificate file a PEM chain whose first
 * certificate is the key's, the CA file (if set) holding the issuer of the chain's last
 * certificate. Throws a TlsError naming the setting and the file.
 */
export function loadTls(config: TlsSettings): TlsMaterial {
  const certFile = path.resolve(config.tlsCertFile);
  const keyFile = path.resolve(config.tlsKeyFile);
  const chain = certificates('TLS_CERT_FILE (--tls-cert-file)', certFile, read('TLS_CERT_FILE (--tls-cert-file)', certFile));
  const key = privateKey(keyFile, read('TLS_KEY_FILE (--tls-key-file)', keyFile), config.tlsKeyPassphrase);
  if (key.type !== 'private') throw new TlsError(`TLS_KEY_FILE (--tls-key-file) ${keyFile} is not a private key`);
  const leaf = chain.parsed[0]!;
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsError(`TLS_KEY_FILE (--tls-key-file) ${keyFile} does not match the certificate in TLS_CERT_FILE (--tls-cert-file) ${certFile} (${leaf.subject.replaceAll('\n', ', ')})`);
  }
  const pems = [...chain.pem];
  if (config.tlsCaFile !== '') {
    const caFile = path.resolve(config.tlsCaFile);
    const ca = certificates('TLS_CA_FILE (--tls-ca-file)', caFile, read('TLS_CA_FILE (--tls-ca-file)', caFile));
    const last = chain.parsed.at(-1)!;
    // A CA file that does not continue the chain would be sent to every client and fail them all.
    if (!ca.parsed.some((issuer) => last.checkIssued(issuer) && last.verify(issuer.publicKey))) {
      throw new TlsError(`TLS_CA_FILE (--tls-ca-file) ${caFile} holds no issuer of the certificate ${last.subject.replaceAll('\n', ', ')} (issued by ${last.issuer.replaceAll('\n', ', ')}) in TLS_CERT_FILE (--tls-cert-file) ${certFile}`);
    }
    pems.push(...ca.pem);
  }
  // SSLApp reads the chain from one file (SSL_CTX_use_certificate_chain_file); its ca_file_name
  // would instead ask clients for certificates (mutual TLS). The checked bytes go into a private
  // copy, so what is served is what was checked even if the file changes in between.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'speech-tls-'));
  const chainFile = path.join(dir, 'chain.pem');
  writeFileSync(chainFile, pems.join('\n') + '\n', { mode: 0o600 });
  const options: AppOptions = { cert_file_name: chainFile, key_file_name: keyFile };
  if (config.tlsKeyPassphrase !== '') options.passphrase = config.tlsKeyPassphrase;
  return {
    options,
    info: {
      subject: leaf.subject.replaceAll('\n', ', '),
      serial: leaf.serialNumber,
      fingerprint256: leaf.fingerprint256,
      validTo: new Date(leaf.validTo).toISOString(),
      chainLength: pems.length - 1,
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
