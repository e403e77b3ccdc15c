/*
 * app.h: what every program holds for its lifetime.
 *
 * A program calls sg_app_start before its accept loop: it loads the
 * configuration, opens logging and the store, and on any failure prints
 * one line naming the file (and JSON path) and exits non-zero.  Handlers
 * receive the struct sg_app as their context.
 */
#ifndef SG_APP_H
#define SG_APP_H

#include "config.h"
#include "request.h"
#include "store.h"

struct sg_app {
	const char *program;    /* borrowed, e.g. "syncgate-session-check" */
	struct sg_config *cfg;  /* owned */
	struct sg_store *store; /* owned */
};

/* Loads, opens and checks everything, or prints one line and exits 1. */
void sg_app_start(struct sg_app *app, const char *program);

/* Closes the store and frees the configuration. */
void sg_app_stop(struct sg_app *app);

/*
 * Returns the database the request's first path segment names, or sends
 * 404 {"error":"not_found","reason":"no such database"} and returns NULL.
 */
const struct sg_db_config *sg_app_db(struct sg_app *app, struct sg_request *r);

/*
 * Runs the sampled purge of expired sessions once every few calls, so
 * that the programs that create sessions keep the store tidy.
 */
void sg_app_upkeep(struct sg_app *app);

#endif
