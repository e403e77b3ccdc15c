/*
 * app.c: program start-up and the per-request database lookup.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "app.h"
#include "log.h"
#include "session.h"

/* Session creations between two sampled purges of expired sessions. */
#define UPKEEP_EVERY 32

void
sg_app_start(struct sg_app *app, const char *program)
{
	struct sg_error err;
	const char *path = sg_config_default_path();

	sg_error_clear(&err);
	app->program = program;
	app->cfg = NULL;
	app->store = NULL;
	if (sg_config_load(path, &app->cfg, &err) != 0) {
		fprintf(stderr, "%s: %s\n", program, err.reason);
		exit(1);
	}
	sg_log_open(program, app->cfg->log_syslog, (enum sg_log_level)app->cfg->log_level);
	if (sg_store_open(app->cfg->store_path, &app->store, &err) != 0) {
		fprintf(stderr, "%s: %s: store.path: %s\n", program, path, err.reason);
		exit(1);
	}
}

void
sg_app_stop(struct sg_app *app)
{
	sg_store_close(app->store);
	sg_config_free(app->cfg);
	app->store = NULL;
	app->cfg = NULL;
}

const struct sg_db_config *
sg_app_db(struct sg_app *app, struct sg_request *r)
{
	const struct sg_db_config *db = NULL;

	if (r->n_segs > 0)
		db = sg_config_db(app->cfg, r->segs[0]);
	if (db == NULL)
		sg_response_error(r, 404, "no such database");
	return db;
}

void
sg_app_upkeep(struct sg_app *app)
{
	static unsigned calls;
	unsigned long removed = 0;
	struct sg_error err;

	if (++calls % UPKEEP_EVERY != 0)
		return;
	if (sg_session_purge(app->store, time(NULL), 0, &removed, &err) != 0)
		sg_log(SG_LOG_WARN, "session purge failed: %s", err.reason);
	else if (removed > 0)
		sg_log(SG_LOG_DEBUG, "purged %lu expired sessions", removed);
}
