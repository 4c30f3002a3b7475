/*
 * tls_check.c - see tls_check.h.
 *
 * The diagnosis repeats what Paho does (TCP connect, TLS handshake with the
 * same files, peer and host name verification) with OpenSSL directly, so
 * that each step's own error is at hand: the verify result names a CA or
 * host name problem, an alert from the broker names a refused client
 * certificate. With TLS 1.3 the broker checks our certificate only after
 * our side of the handshake is complete, so a refusal arrives as an alert
 * on the first read: the probe waits briefly for it.
 */
#include "tls_check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
/*
 * openssl/err.h uses INT_MAX from <limits.h>, which the build's include
 * path resolves to gateway/logic/limits.h (the safety limits): give it the
 * compiler's value.
 */
#ifndef INT_MAX
#define INT_MAX __INT_MAX__
#endif
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long the probe waits for a post-handshake alert (TLS 1.3 client auth). */
#define ALERT_WAIT_MS 1000

/* Never prompt on a terminal for the passphrase of an encrypted key. */
static int no_passphrase(char *buf, int size, int rwflag, void *user_data)
{
	return -1;
}

/* The most specific OpenSSL reason queued, then clears the queue. */
static const char *openssl_reason(void)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	return reason ? reason : "unknown error";
}

static int check_ca(const char *path, char *err, size_t errlen)
{
	X509_STORE *store = X509_STORE_new();
	int r = 0;

	if (!store)
		return -ENOMEM;
	ERR_clear_error();
	if (X509_STORE_load_file(store, path) != 1) {
		snprintf(err, errlen, "\"%s\" holds no usable PEM CA certificate (%s)", path,
			 openssl_reason());
		r = -EINVAL;
	}
	X509_STORE_free(store);
	return r;
}

static X509 *read_cert(const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	X509 *cert;

	if (!bio)
		return NULL;
	cert = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return cert;
}

static EVP_PKEY *read_key(const char *path)
{
	BIO *bio = BIO_new_file(path, "r");
	EVP_PKEY *key;

	if (!bio)
		return NULL;
	key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
	BIO_free(bio);
	return key;
}

int tls_check_files(const struct tls_files *files, enum tls_file *which, char *err,
		    size_t errlen)
{
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	enum tls_file bad = TLS_FILE_CA;
	struct stat st;
	int r = 0;

	ERR_clear_error();
	if (files->ca_file) {
		r = check_ca(files->ca_file, err, errlen);
		if (r < 0)
			goto fail;
	}
	if (!files->cert_file || !files->key_file)
		return 0;
	bad = TLS_FILE_CERT;
	cert = read_cert(files->cert_file);
	if (!cert) {
		snprintf(err, errlen, "\"%s\" holds no PEM certificate (%s)", files->cert_file,
			 openssl_reason());
		r = -EINVAL;
		goto fail;
	}
	bad = TLS_FILE_KEY;
	key = read_key(files->key_file);
	if (!key) {
		snprintf(err, errlen, "\"%s\" holds no unencrypted PEM private key (%s)",
			 files->key_file, openssl_reason());
		r = -EINVAL;
		goto fail;
	}
	/* Like ssh: a private key any local user can read is no longer private. */
	if (stat(files->key_file, &st) == 0 && (st.st_mode & (S_IROTH | S_IWOTH))) {
		snprintf(err, errlen, "\"%s\" is readable by every user (mode %04o): chmod 0600",
			 files->key_file, (unsigned)(st.st_mode & 07777));
		r = -EINVAL;
		goto fail;
	}
	if (X509_check_private_key(cert, key) != 1) {
		snprintf(err, errlen, "\"%s\" does not match the certificate \"%s\" (%s)",
			 files->key_file, files->cert_file, openssl_reason());
		r = -EINVAL;
		goto fail;
	}
	X509_free(cert);
	EVP_PKEY_free(key);
	return 0;
fail:
	X509_free(cert);
	EVP_PKEY_free(key);
	ERR_clear_error();
	*which = bad;
	return r;
}

int tls_cert_not_after(const char *path, int64_t *out)
{
	X509 *cert = read_cert(path);
	struct tm tm;
	int r = -EINVAL;

	if (cert && ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1) {
		*out = (int64_t)timegm(&tm);
		r = 0;
	}
	X509_free(cert);
	ERR_clear_error();
	return r;
}

/* ---- diagnosis ------------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int left_ms(uint64_t deadline)
{
	uint64_t now = now_ms();

	return now >= deadline ? 0 : (int)(deadline - now);
}

/* Waits for fd to be ready for events; false on timeout. */
static bool wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	int r;

	do
		r = poll(&pfd, 1, left_ms(deadline));
	while (r < 0 && errno == EINTR);
	return r > 0;
}

static int connect_one(const struct addrinfo *ai, uint64_t deadline, int *err)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			ai->ai_protocol);
	socklen_t len = sizeof(*err);

	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		*err = errno;
		close(fd);
		return -1;
	}
	if (!wait_fd(fd, POLLOUT, deadline)) {
		*err = ETIMEDOUT;
		close(fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, err, &len) < 0)
		*err = errno;
	if (*err) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A connected non-blocking TCP socket, or -1 with the reason in out. */
static int tcp_connect(const char *host, int port, uint64_t deadline, char *out, size_t outlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	char service[16];
	int fd = -1, err = 0, r;

	snprintf(service, sizeof(service), "%d", port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r != 0) {
		snprintf(out, outlen, "cannot resolve the broker's host name \"%s\": %s", host,
			 gai_strerror(r));
		return -1;
	}
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
		fd = connect_one(ai, deadline, &err);
	freeaddrinfo(res);
	if (fd < 0)
		snprintf(out, outlen, "cannot reach the broker at %s:%d: %s", host, port,
			 strerror(err));
	return fd;
}

static bool is_ip_literal(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static SSL_CTX *probe_ctx(const struct tls_files *files, char *out, size_t outlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	bool ok;

	if (!ctx) {
		snprintf(out, outlen, "cannot create a TLS context: %s", openssl_reason());
		return NULL;
	}
	SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
	ok = files->ca_file ? SSL_CTX_load_verify_locations(ctx, files->ca_file, NULL) == 1
			    : SSL_CTX_set_default_verify_paths(ctx) == 1;
	if (ok && files->cert_file && files->key_file)
		ok = SSL_CTX_use_certificate_chain_file(ctx, files->cert_file) == 1 &&
		     SSL_CTX_use_PrivateKey_file(ctx, files->key_file, SSL_FILETYPE_PEM) == 1;
	if (!ok) {
		snprintf(out, outlen, "cannot load the TLS files: %s", openssl_reason());
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

/* The broker's certificate failed verification: say how. */
static void explain_verify(long v, const char *host, const struct tls_files *files, char *out,
			   size_t outlen)
{
	const char *ca = files->ca_file ? files->ca_file : "the system's CA store";

	switch (v) {
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		snprintf(out, outlen,
			 "host name mismatch: the broker's certificate is not issued for \"%s\" "
			 "(use the name in its subjectAltName in mqtt.uri)",
			 host);
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		snprintf(out, outlen,
			 "the broker's certificate is not signed by a CA in %s (%s): wrong "
			 "mqtt.tls.ca_file or wrong broker",
			 ca, X509_verify_cert_error_string(v));
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		snprintf(out, outlen,
			 "the broker's certificate is outside its validity period (%s); check "
			 "this machine's clock too",
			 X509_verify_cert_error_string(v));
		break;
	default:
		snprintf(out, outlen, "the broker's certificate failed verification: %s",
			 X509_verify_cert_error_string(v));
		break;
	}
}

/* The handshake failed without a verify error: the broker's alert says why. */
static void explain_alert(const char *reason, const struct tls_files *files, char *out,
			  size_t outlen)
{
	static const char *const cert_alerts[] = { "unknown ca",	   "bad certificate",
						   "certificate unknown", "certificate required",
						   "certificate revoked", "certificate expired",
						   NULL };
	bool has_cert = files->cert_file && files->key_file;

	for (const char *const *a = cert_alerts; *a; a++) {
		if (!strstr(reason, "alert") || !strstr(reason, *a))
			continue;
		if (has_cert)
			snprintf(out, outlen,
				 "the broker refused our client certificate \"%s\" (%s): is it "
				 "signed by the broker's CA, and still valid?",
				 files->cert_file, reason);
		else
			snprintf(out, outlen,
				 "the broker requires a client certificate (%s): set "
				 "mqtt.tls.cert_file and mqtt.tls.key_file",
				 reason);
		return;
	}
	if (strstr(reason, "wrong version number") || strstr(reason, "packet length too long") ||
	    strstr(reason, "record layer failure"))
		snprintf(out, outlen,
			 "the broker does not speak TLS on this port (%s): a plain mqtt:// "
			 "listener?",
			 reason);
	else
		snprintf(out, outlen, "TLS handshake failed: %s", reason);
}

/* Drives a non-blocking handshake step (connect or read) until done or deadline. */
static int ssl_step(SSL *ssl, int fd, bool handshake, uint64_t deadline, int *ssl_err)
{
	char byte;

	for (;;) {
		int r = handshake ? SSL_connect(ssl) : SSL_read(ssl, &byte, 1);

		if (r > 0)
			return 1;
		*ssl_err = SSL_get_error(ssl, r);
		if (*ssl_err == SSL_ERROR_WANT_READ) {
			if (!wait_fd(fd, POLLIN, deadline))
				return -ETIMEDOUT;
		} else if (*ssl_err == SSL_ERROR_WANT_WRITE) {
			if (!wait_fd(fd, POLLOUT, deadline))
				return -ETIMEDOUT;
		} else {
			return -EPROTO;
		}
	}
}

bool tls_diagnose(const char *host, int port, const struct tls_files *files, bool verify_host,
		  unsigned timeout_ms, char *out, size_t outlen)
{
	uint64_t deadline = now_ms() + timeout_ms;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	bool found = true;
	int fd, r, ssl_err = 0;
	long v;

	ERR_clear_error();
	fd = tcp_connect(host, port, deadline, out, outlen);
	if (fd < 0)
		return true;
	if (!files) {
		snprintf(out, outlen, "the broker accepts TCP connections at %s:%d", host, port);
		close(fd);
		return false;
	}
	ctx = probe_ctx(files, out, outlen);
	if (!ctx)
		goto done;
	ssl = SSL_new(ctx);
	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		snprintf(out, outlen, "cannot set up TLS: %s", openssl_reason());
		goto done;
	}
	if (!is_ip_literal(host))
		SSL_set_tlsext_host_name(ssl, host);
	if (verify_host) {
		X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

		if (is_ip_literal(host))
			X509_VERIFY_PARAM_set1_ip_asc(param, host);
		else
			SSL_set1_host(ssl, host);
	}
	r = ssl_step(ssl, fd, true, deadline, &ssl_err);
	if (r == -ETIMEDOUT) {
		snprintf(out, outlen, "no TLS handshake from %s:%d within %u ms", host, port,
			 timeout_ms);
		goto done;
	}
	if (r < 0) {
		v = SSL_get_verify_result(ssl);
		if (v != X509_V_OK)
			explain_verify(v, host, files, out, outlen);
		else if (ssl_err == SSL_ERROR_SSL)
			explain_alert(openssl_reason(), files, out, outlen);
		else
			snprintf(out, outlen,
				 "the broker closed the connection during the TLS handshake (a "
				 "plain mqtt:// listener?)");
		goto done;
	}
	/* TLS 1.3: a refused client certificate comes back as an alert now. */
	r = ssl_step(ssl, fd, false,
		     now_ms() + ALERT_WAIT_MS < deadline ? now_ms() + ALERT_WAIT_MS : deadline,
		     &ssl_err);
	if (r == -EPROTO && ssl_err == SSL_ERROR_SSL) {
		explain_alert(openssl_reason(), files, out, outlen);
		goto done;
	}
	if (r == -EPROTO) {
		snprintf(out, outlen, "the broker closed the connection after the TLS handshake");
		goto done;
	}
	snprintf(out, outlen, "a TLS handshake with %s:%d succeeds (certificates are fine)", host,
		 port);
	found = false;
done:
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	ERR_clear_error();
	return found;
}
