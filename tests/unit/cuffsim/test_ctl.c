/*
 * test_ctl.c - `cuffsim ctl` against a real simulator: the simulator runs
 * its event loop in a forked child (ctl blocks on its socket, so the two
 * cannot share this thread); the parent runs cuffsim_ctl_main with memory
 * streams for stdin, stdout and stderr. Command words, stdin lines,
 * refused lines, and every usage and connection error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "cuff_profile.h"
#include "loop.h"
#include "sim.h"

struct env {
	char dir[64];
	struct loop *loop;
	struct sim *sim;
	pid_t child;
};

struct run {
	int status;
	char *out;
	char *err;
};

static int env_setup(void **state)
{
	static struct env e;
	struct sim_config cfg = { .n_cuffs = 2, .limb = BFR_LIMB_LEG, .rate_hz = 20,
				  .seed = 5, .batch = 1 };

	memset(&e, 0, sizeof(e));
	strcpy(e.dir, "/tmp/cuffsim-ctl-XXXXXX");
	assert_non_null(mkdtemp(e.dir));
	cfg.dir = e.dir;
	assert_int_equal(loop_new(&e.loop), 0);
	/* Listening before the fork: the parent can connect at once. */
	assert_int_equal(sim_new(e.loop, &cfg, &e.sim), 0);
	e.child = fork();
	assert_true(e.child >= 0);
	if (e.child == 0) {
		/* `quit` or SIGTERM ends it; _exit: the parent owns the cleanup. */
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* a failed parent must not leave us */
		if (sim_start(e.sim) < 0 || loop_run(e.loop) < 0)
			_exit(1);
		_exit(0);
	}
	*state = &e;
	return 0;
}

static int env_teardown(void **state)
{
	struct env *e = *state;
	int status;

	kill(e->child, SIGTERM);
	assert_int_equal(waitpid(e->child, &status, 0), e->child);
	sim_free(e->sim); /* unlinks the sockets */
	loop_free(e->loop);
	assert_int_equal(rmdir(e->dir), 0);
	return 0;
}

/* Runs `cuffsim ctl args...` (argv NULL-terminated) with `input` as stdin. */
static struct run ctl(const char *input, const char *const *argv)
{
	int argc = 0;
	struct run r = { 0 };
	size_t out_len = 0, err_len = 0;
	FILE *in = tmpfile();
	FILE *out = open_memstream(&r.out, &out_len);
	FILE *err = open_memstream(&r.err, &err_len);
	char *args[16];

	assert_non_null(in);
	assert_non_null(out);
	assert_non_null(err);
	for (; argv[argc]; argc++) {
		assert_true(argc < 15);
		args[argc] = (char *)argv[argc];
	}
	args[argc] = NULL;
	assert_true(fputs(input, in) >= 0);
	rewind(in);
	r.status = cuffsim_ctl_main(argc, args, in, out, err);
	fclose(in);
	fclose(out);
	fclose(err);
	return r;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

static void test_command_words_one_line(void **state)
{
	struct env *e = *state;
	struct run r;

	r = ctl("", (const char *[]){ "ctl", "--dir", e->dir, "stats", NULL });
	assert_int_equal(r.status, CTL_EXIT_OK);
	assert_true(strncmp(r.out, "ok {\"cuffs\":[", 13) == 0);
	/* exactly one line */
	assert_ptr_equal(strchr(r.out, '\n'), r.out + strlen(r.out) - 1);
	assert_string_equal(r.err, "");
	run_free(&r);

	/* Words are joined with single spaces into one control line. */
	r = ctl("", (const char *[]){ "ctl", "--dir", e->dir, "leak", "2", "20", NULL });
	assert_int_equal(r.status, CTL_EXIT_OK);
	assert_string_equal(r.out, "ok leak 2\n");
	run_free(&r);
	r = ctl("", (const char *[]){ "ctl", "--dir", e->dir, "button", "1 long", NULL });
	assert_int_equal(r.status, CTL_EXIT_OK);
	assert_string_equal(r.out, "ok button 1\n");
	run_free(&r);

	/* --socket and -- (a command word that looks like an option). */
	char path[128];
	snprintf(path, sizeof(path), "%s/control.sock", e->dir);
	r = ctl("", (const char *[]){ "ctl", "--timeout", "2.5", "--socket", path, "--",
					 "status", "2", NULL });
	assert_int_equal(r.status, CTL_EXIT_OK);
	assert_true(strncmp(r.out, "ok {\"cuff\":2,", 13) == 0);
	run_free(&r);
}

static void test_refused_line_exit_1(void **state)
{
	struct env *e = *state;
	struct run r;

	r = ctl("", (const char *[]){ "ctl", "--dir", e->dir, "leak", "9", NULL });
	assert_int_equal(r.status, CTL_EXIT_REFUSED);
	assert_string_equal(r.out, "error: leak: bad cuff '9' (1..2 or all)\n");
	assert_string_equal(r.err, "");
	run_free(&r);
}

static void test_stdin_lines(void **state)
{
	struct env *e = *state;
	struct run r;

	r = ctl("limit 1 120\n\n# a comment\n   \nbutton 2 short\r\nbogus\nclear all",
		(const char *[]){ "ctl", "--dir", e->dir, NULL });
	/* One reply per line sent, in order; a refused line makes the status 1. */
	assert_int_equal(r.status, CTL_EXIT_REFUSED);
	assert_string_equal(r.out, "ok limit 1\nok button 2\nerror: unknown command 'bogus'\n"
				   "ok clear all\n");
	run_free(&r);

	r = ctl("", (const char *[]){ "ctl", "--dir", e->dir, NULL });
	assert_int_equal(r.status, CTL_EXIT_OK);
	assert_string_equal(r.out, "");
	run_free(&r);
}

static void test_usage_and_connection_errors(void **state)
{
	struct env *e = *state;
	static const struct {
		const char *argv[7];
		const char *err;
	} cases[] = {
		{ { "ctl", "stats" }, "give exactly one of --dir and --socket" },
		{ { "ctl", "--dir", "/tmp", "--socket", "/tmp/x", "stats" },
		  "give exactly one of --dir and --socket" },
		{ { "ctl", "--dir" }, "--dir needs a value" },
		{ { "ctl", "--bogus", "1", "stats" }, "unknown option '--bogus'" },
		{ { "ctl", "--dir", "/tmp", "--timeout", "0" }, "--timeout: want seconds" },
		{ { "ctl", "--dir", "/tmp", "--timeout", "soon" }, "--timeout: want seconds" },
		{ { "ctl", "--dir", "/nonexistent/cuffsim", "stats" },
		  "cannot connect to /nonexistent/cuffsim/control.sock: No such file" },
		{ { "ctl", "--dir", "/tmp", "leak\n1", "5" }, "contains a line break" },
	};
	struct run r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = ctl("", cases[i].argv);
		assert_int_equal(r.status, CTL_EXIT_FAILED);
		if (!strstr(r.err, cases[i].err))
			fail_msg("case %zu: stderr '%s' lacks '%s'", i, r.err, cases[i].err);
		assert_string_equal(r.out, "");
		run_free(&r);
	}
	r = ctl("", (const char *[]){ "ctl", "--help", NULL });
	assert_int_equal(r.status, CTL_EXIT_OK);
	assert_non_null(strstr(r.out, "usage: cuffsim ctl"));
	run_free(&r);
	/* Nothing of it reached the simulator. */
	r = ctl("", (const char *[]){ "ctl", "--dir", e->dir, "status", "1", NULL });
	assert_non_null(strstr(r.out, "\"att_requests\":0"));
	run_free(&r);
}

static void test_quit_then_no_reply(void **state)
{
	struct env *e = *state;
	struct run r;
	int status;

	/*
	 * After `quit` cuffsim is gone: the next line cannot be sent or gets no
	 * reply (which one depends on how fast it exits), status 2.
	 */
	r = ctl("quit\nstats\n", (const char *[]){ "ctl", "--dir", e->dir, NULL });
	assert_int_equal(r.status, CTL_EXIT_FAILED);
	assert_string_equal(r.out, "ok quit\n");
	if (!strstr(r.err, "without replying to 'stats'") &&
	    !strstr(r.err, "before 'stats' was sent"))
		fail_msg("stderr: %s", r.err);
	run_free(&r);
	assert_int_equal(waitpid(e->child, &status, 0), e->child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	e->child = fork(); /* teardown kills and reaps a child: give it one */
	if (e->child == 0)
		_exit(0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_command_words_one_line, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_refused_line_exit_1, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_stdin_lines, env_setup, env_teardown),
		cmocka_unit_test_setup_teardown(test_usage_and_connection_errors, env_setup,
						env_teardown),
		cmocka_unit_test_setup_teardown(test_quit_then_no_reply, env_setup, env_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
