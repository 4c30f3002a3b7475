/*
 * cuff.h - one supervised cuff: its link (cuff_link), its safety engine
 * (gateway/logic/safety.c) and the commands the gateway sends it.
 *
 * The receive path of a notification is the product's central safety
 * property and lives here (cuff.c, on_samples): every sample goes to the
 * safety engine first, and a DEFLATE the engine asks for is written to the
 * cuff's control point (at the head of the ATT queue) before the next
 * sample is looked at. Only when the engine has seen every sample of the
 * notification do the owner's callbacks run: on_safety_deflate (which ends
 * the cuff's session), then on_samples (session timing, telemetry).
 *
 * Every command that could inflate asks the engine first (INFLATE_CMD,
 * LOP_MEASURE) and sends nothing when it refuses. A DEFLATE is sent unless
 * one with at least the same reason is already being tracked by the engine
 * (it re-sends that one by itself while the cuff does not deflate): one
 * DEFLATE in flight per cuff, however many parties ask for it in one batch.
 *
 * Upward the cuff reports through one callback struct registered by its
 * owner; it calls nothing above it. The session a cuff is lent to is
 * recorded here (cuff_attach) and nowhere else. Loop thread only.
 */
#ifndef BFR_CUFF_H
#define BFR_CUFF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alarm.h"
#include "config.h"
#include "cuff_link.h"
#include "limits.h"
#include "log.h"
#include "loop.h"
#include "payload.h"
#include "store.h"

struct cuff;

struct cuff_callbacks {
	/* One notification's samples, after the safety engine saw all of them. */
	void (*on_samples)(struct cuff *c, const struct bfr_sample *samples, size_t n,
			   void *user_data);
	/* The engine deflated the cuff for a safety reason while it was lent to a
	 * session: why is the code of the HIGH alarm raised with it, else "safety". */
	void (*on_safety_deflate)(struct cuff *c, const char *why, uint8_t deflate_reason,
				  void *user_data);
	/* The link dropped after it had been ready. */
	void (*on_link_lost)(struct cuff *c, void *user_data);
	/* A MEASURE_LOP ended; ok false when it failed. */
	void (*on_lop_result)(struct cuff *c, bool ok, double lop_mmhg, void *user_data);
	/* A SET_TARGET was refused or failed, and the cuff was deflated:
	 * why "cuff_refused" or "cuff_error". */
	void (*on_target_failed)(struct cuff *c, const char *why, void *user_data);
	/* Something its published state shows changed; urgent for discrete
	 * changes (link, alarms, session, LOP), not for a new pressure. */
	void (*on_changed)(struct cuff *c, bool urgent, void *user_data);
	/* The cuff's button (status bit 6, BFR_ST_BUTTON, timed on the samples'
	 * own clock): long_press once it has been held CUFF_BUTTON_LONG_MS
	 * (reported while still held, once per press), else a short press,
	 * reported when it is let go. After the notification's other
	 * callbacks. Optional. */
	void (*on_button)(struct cuff *c, bool long_press, void *user_data);
};

/* A press held this long is a long press (DESIGN section 11). */
#define CUFF_BUTTON_LONG_MS 2000

struct cuff_deps {
	struct loop *loop;
	struct alarm_table *alarms;
	struct payload_ctx *ctx;        /* wall clock of alarm and LOP records */
	struct store *store;            /* NULL: LOP measurements are not recorded */
	struct transport_sched *sched;  /* one LE connect per adapter */
	const struct config *cfg;
};

/* Validates the cuff's limits against the compiled ones (err says which
 * would loosen) and creates its link, not yet started. -errno. */
int cuff_new(const struct cuff_deps *deps, size_t index, const struct cuff_callbacks *cb,
	     void *user_data, struct cuff **out, char *err, size_t errlen);
void cuff_free(struct cuff *c);
int cuff_start(struct cuff *c);

const char *cuff_id(const struct cuff *c);
/* The cuff with this id among cuffs[0..n), or NULL. */
struct cuff *cuff_find(struct cuff *const *cuffs, size_t n, const char *id);
size_t cuff_index(const struct cuff *c);
const struct config_cuff *cuff_config(const struct cuff *c);
const struct limits *cuff_limits(const struct cuff *c);

#define cuff_log(c, level, ...) log_obj(level, "cuff", cuff_id(c), __VA_ARGS__)

/* What the cuff's published state is made of. */
struct cuff_reading {
	enum cuff_link_state link;
	const char *link_error; /* "" when none */
	bool was_ready;         /* the link reached READY at least once */
	bool have_sample;
	double pressure, reported_target, pulse;
	uint16_t status_bits;
	bool have_status;
	struct bfr_status status;
	int battery_pct;        /* -1 unknown */
	double lop_mmhg;        /* NAN: none */
	int64_t lop_age_s;
	int64_t lop_age_ms;     /* -1: no LOP */
	const char *session_id; /* NULL: not in a session */
	bool lop_measuring;     /* a lop/measure outside a session is in flight */
	bool measuring_lop;     /* a LOP search is running (in a session or not) */
	uint64_t sample_age_ms; /* since the latest sample arrived (have_sample) */
	const struct gatt_device_info *info; /* strings "" until read at connect */
};

void cuff_read(const struct cuff *c, struct cuff_reading *out);

/* The cuff is lent to a session (the safety engine counts its session
 * total); session_id must stay valid until cuff_detach. */
void cuff_attach(struct cuff *c, const char *session_id, void *owner);
void cuff_detach(struct cuff *c);
void *cuff_session_owner(const struct cuff *c);
/* Lent to a session, or measuring a LOP outside one. */
bool cuff_busy(const struct cuff *c);

/* A LOP measured by an earlier run (SR-15), age_ms old now. */
void cuff_restore_lop(struct cuff *c, double lop_mmhg, uint64_t age_ms);
/* The LOP the engine uses (NAN if none) and its age in s (-1 if none). */
double cuff_lop(const struct cuff *c, int64_t *age_s);
/* Queries, no change: may a new inflation start / this target be set? */
int cuff_may_inflate(const struct cuff *c, enum limits_refusal *why);
int cuff_check_target(const struct cuff *c, double target_mmhg, enum limits_refusal *why);
/* Milliseconds until the reperfusion wait (SR-08) lets it inflate: 0 none,
 * UINT64_MAX while it has not been seen deflated yet. */
uint64_t cuff_reperfusion_wait_ms(const struct cuff *c);

/*
 * SET_TARGET after the engine agreed: -EPERM with *why when it refused
 * (nothing sent), -ENOTCONN or another -errno when the write failed.
 */
int cuff_set_target(struct cuff *c, double target_mmhg, uint16_t ramp_ms,
		    enum limits_refusal *why);
/* DEFLATE (enum bfr_deflate_reason); rest: an intermittent rest, which does
 * not start reperfusion. The engine is told even when nothing is sent. */
void cuff_deflate(struct cuff *c, uint8_t reason, bool rest);
/* MEASURE_LOP after asking the engine: -EPERM with *why, or -errno. */
int cuff_measure_lop(struct cuff *c, enum limits_refusal *why);
/* Cosmetic writes: a lost one changes nothing. -errno. */
int cuff_cue(struct cuff *c, enum bfr_cue cue);
int cuff_identify(struct cuff *c);
/* Orderly stop: a DEFLATE to a cuff that may be inflated, engine untold
 * (the loop stops right after). */
void cuff_deflate_for_shutdown(struct cuff *c);

#endif
