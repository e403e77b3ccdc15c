/*
 * test_log.c: log lines to stderr: the threshold, the event form, and no
 * way for a value to forge a second line.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

/* Runs the logging calls of fn with stderr sent to a file; returns its text. */
static char *
capture(void (*fn)(void))
{
	static char text[4096];
	FILE *f = tmpfile();
	int saved = dup(2);
	size_t n;

	fflush(stderr);
	dup2(fileno(f), 2);
	fn();
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	rewind(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

static void
log_levels(void)
{
	sg_log_open("prog", 0, SG_LOG_INFO);
	sg_log(SG_LOG_DEBUG, "hidden %d", 1);
	sg_log(SG_LOG_INFO, "shown %d", 2);
	sg_log(SG_LOG_ERR, "error %s", "x");
}

static void
log_event(void)
{
	sg_log_open("prog", 0, SG_LOG_DEBUG);
	sg_log_event(SG_LOG_INFO, "db", "alice", "session.create", "ok, session %s", "abc");
	sg_log_event(SG_LOG_WARN, NULL, "", "auth", "refused");
}

static void
log_injection(void)
{
	sg_log_open("prog", 0, SG_LOG_INFO);
	sg_log_event(SG_LOG_INFO, "db", "eve\nprog: info: db=db user=admin forged", "auth", "x\ry");
}

int
main(void)
{
	tap_is_int(sg_log_level_parse("debug"), SG_LOG_DEBUG, "level names parse");
	tap_is_int(sg_log_level_parse("error"), SG_LOG_ERR, "error level");
	tap_is_int(sg_log_level_parse("verbose"), -1, "unknown level refused");
	tap_is_str(capture(log_levels), "prog: info: shown 2\nprog: error: error x\n",
		"threshold drops lower levels");
	tap_is_str(capture(log_event),
		"prog: info: db=db user=alice session.create: ok, session abc\n"
		"prog: warn: db=- user=- auth: refused\n",
		"event lines name db, user and outcome");
	tap_is_str(capture(log_injection),
		"prog: info: db=db user=eve?prog: info: db=db user=admin forged auth: x?y\n",
		"control characters cannot start a second line");
	return tap_done();
}
