// How a follower trusts the holder it streams a cold blob from (cluster-follow.ts) when the
// registry serves TLS. Replicas reach each other at their Pod IPs (cluster.advertiseUrl), which no
// certificate of the registry names, so the ordinary check (chain + hostname) always failed and
// every follower downloaded the blob itself.
//
// Why pin our own certificate instead of checking the chain without the hostname: registry.tls
// has no CA of its own. Its certificate is typically issued by a public CA (or a cluster issuer)
// for the registry's public name, and a chain check without the name accepts every certificate
// that CA ever issued to anyone: no proof of talking to a replica, and the follower's replica
// token would go to whoever answers at that address. All replicas of one deployment mount the
// same certificate Secret, so a peer is a replica exactly when it presents this replica's own
// certificate: the handshake proves it holds that certificate's private key. Nothing else is
// trusted (any CA, the hostname, a plain-HTTP peer). A certificate rotated in the Secret reaches a
// replica when it restarts (the server reads it at start too): until all have restarted, replicas
// on different certificates do not follow each other and download themselves (correct, only one
// more upstream fetch), never the reverse.
import { X509Certificate } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import { buildConnector } from 'undici';

/** The SHA-256 fingerprint of the first (leaf) certificate in a PEM file's text. */
export function certificateFingerprint(pem: string): string {
  return new X509Certificate(pem).fingerprint256;
}

/**
 * A connector for the peer route that accepts only TLS peers presenting the certificate whose
 * fingerprint is `pin` (see above for why the chain and the hostname are not what is checked).
 */
export function pinnedPeerConnector(pin: string, timeoutMs: number): buildConnector.connector {
  // The chain is not verified by OpenSSL (a self-signed or privately issued certificate would
  // fail it); the pin below decides alone, before a byte of the request is sent. No session
  // resumption: a resumed session shows no certificate to check, and a session is cached before
  // the pin is checked, so an impostor could resume the very session it was refused in.
  const connect = buildConnector({ timeout: timeoutMs, rejectUnauthorized: false, maxCachedSessions: 0 });
  return (options, callback) => {
    if (options.protocol !== 'https:') {
      callback(new Error(`a replica serving TLS follows only TLS peers, not ${options.protocol}//${options.hostname}`), null);
      return;
    }
    connect(options, (err, socket) => {
      if (err || !socket) {
        callback(err ?? new Error('no connection'), null);
        return;
      }
      const presented = socket instanceof TLSSocket ? socket.getPeerCertificate().fingerprint256 : undefined;
      if (presented !== pin) {
        socket.destroy();
        callback(new Error(`the peer's TLS certificate (${presented ?? 'none'}) is not this replica's own`), null);
        return;
      }
      callback(null, socket);
    });
  };
}
