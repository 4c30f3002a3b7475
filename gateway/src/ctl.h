/*
 * ctl.h - the local control socket of a home gateway (`bfr-gateway ctl
 * start|stop|status`, DESIGN section 11), and its client.
 *
 * Server: an AF_UNIX SOCK_STREAM socket served on the event loop. One
 * request per connection: a line of at most CTL_LINE_MAX bytes ("start\n"),
 * answered with one line of compact JSON, then the connection is closed. A
 * connection that sends nothing for CTL_CLIENT_TIMEOUT_MS is closed. Who
 * connected is asked of the kernel (SO_PEERCRED, SO_PEERGROUPS), never of
 * the client: root, the gateway's own user, or a process whose primary or
 * supplementary group is the configured one may use the socket; anyone else
 * is answered {"ok": false, "code": "permission_denied", ...} and logged,
 * and what it sends is never read. The socket file is made 0666 so that
 * the refusal can be told rather than be a bare EACCES.
 *
 * The server knows no verbs: its owner (home.c) answers each request line
 * through the one callback it registered. Loop thread only.
 *
 * Client: ctl_client_main() is `bfr-gateway ctl`: it sends one request and
 * prints the answer for a person (or the JSON with --json). Exit status 0
 * done, 1 refused, 2 bad usage or no gateway listening.
 */
#ifndef BFR_CTL_H
#define BFR_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "loop.h"

#define CTL_LINE_MAX 256
#define CTL_MAX_CLIENTS 4
#define CTL_CLIENT_TIMEOUT_MS 2000
#define CTL_DEFAULT_SOCKET "/run/bfr-gateway/ctl.sock"

struct ctl;

struct ctl_peer {
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

struct ctl_callbacks {
	/* One request line (without its newline) from an allowed peer. Returns
	 * the reply, a JSON object the server sends and then releases; NULL
	 * sends {"ok": false, "code": "internal"}. */
	json_t *(*on_request)(const char *line, const struct ctl_peer *peer, void *user_data);
};

struct ctl_config {
	const char *path;
	bool has_group; /* members of group may connect too */
	gid_t group;
};

/*
 * Listens on cfg->path. A socket file left by an earlier run is replaced;
 * one a running gateway still answers on is not (-EADDRINUSE), nor is a
 * file that is not a socket (-EEXIST). -errno with a reason in err.
 */
int ctl_new(struct loop *loop, const struct ctl_config *cfg, const struct ctl_callbacks *cb,
	    void *user_data, struct ctl **out, char *err, size_t errlen);
/* Closes every connection and the socket, and removes the socket file. */
void ctl_free(struct ctl *ctl);

/* `bfr-gateway ctl [--socket PATH] [--json] start|stop|status`: argv[0] is "ctl". */
int ctl_client_main(int argc, char **argv);

#endif
