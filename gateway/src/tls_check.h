/*
 * tls_check.h - TLS key material checks and connection diagnosis (OpenSSL).
 *
 * Paho reports every failed TLS connection as "TCP/TLS connect failure"
 * and never says why. This module names the cause instead:
 * - tls_check_files() loads the files the way the connection will (CA
 *   bundle, client certificate chain, private key) and checks that the key
 *   belongs to the certificate, so bad key material stops the gateway at
 *   start (and `--check`), not at its first connect;
 * - tls_cert_not_after() gives a certificate's expiry for early warnings;
 * - tls_diagnose() makes one TLS handshake of its own to the broker and
 *   says what went wrong: unreachable, not TLS, the broker's certificate
 *   not signed by the configured CA, issued for another host name, expired,
 *   or our client certificate refused (or missing).
 *
 * No state, no logging. tls_diagnose() blocks (name lookup, connect,
 * handshake) for at most its timeout: never call it on the loop thread.
 * Every function is thread-safe (OpenSSL 1.1+ initialises itself).
 */
#ifndef BFR_TLS_CHECK_H
#define BFR_TLS_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_files {
	const char *ca_file;   /* NULL: the system's CA store */
	const char *cert_file; /* NULL: no client certificate (key_file NULL too) */
	const char *key_file;
};

/* Which file a tls_check_files() error is about. */
enum tls_file {
	TLS_FILE_CA,
	TLS_FILE_CERT,
	TLS_FILE_KEY,
};

/*
 * 0 when every file that is set loads and the key matches the certificate.
 * Otherwise -EINVAL (-ENOMEM), *which names the file and err gets the reason
 * without the file's setting name (e.g. "\"/etc/x/gw.key\" does not match
 * the certificate \"/etc/x/gw.crt\" (key values mismatch)"). A private key
 * readable by every user is refused too. *which is untouched on success.
 */
int tls_check_files(const struct tls_files *files, enum tls_file *which, char *err,
		    size_t errlen);

/* The expiry (notAfter, seconds since the epoch) of the first certificate in path. */
int tls_cert_not_after(const char *path, int64_t *out);

/*
 * Connects to host:port, makes a TLS handshake with files (verifying the
 * broker's certificate, and its host name when verify_host; files NULL:
 * TCP only), and writes one line into out: the cause of the failure, or,
 * when everything works, a sentence saying so. Returns true when it found
 * a cause. Blocks for at most about timeout_ms (plus name resolution).
 */
bool tls_diagnose(const char *host, int port, const struct tls_files *files, bool verify_host,
		  unsigned timeout_ms, char *out, size_t outlen);

#endif
