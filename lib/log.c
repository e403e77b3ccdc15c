/*
 * log.c: the syslog/stderr sink.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "log.h"

/* Longest line written; longer lines are cut (a log is not a data channel). */
#define LINE_MAX_LEN 1024

static const char *prog = "syncgate";
static int to_syslog;
static enum sg_log_level threshold = SG_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
sg_log_open(const char *program, int use_syslog, enum sg_log_level level)
{
	prog = program;
	threshold = level;
	if (to_syslog)
		closelog();
	to_syslog = use_syslog;
	if (to_syslog)
		openlog(prog, LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
}

int
sg_log_level_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

static void
emit(enum sg_log_level level, char *line)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
	char *p;

	for (p = line; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (to_syslog)
		syslog(prio[level], "%s", line);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, level_names[level], line);
}

void
sg_log(enum sg_log_level level, const char *fmt, ...)
{
	char line[LINE_MAX_LEN];
	va_list ap;

	if (level > threshold)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	emit(level, line);
}

void
sg_log_event(enum sg_log_level level, const char *db, const char *user, const char *event,
	const char *fmt, ...)
{
	char line[LINE_MAX_LEN];
	int n;
	va_list ap;

	if (level > threshold)
		return;
	n = snprintf(line, sizeof(line), "db=%s user=%s %s: ", db != NULL ? db : "-",
		user != NULL && *user != '\0' ? user : "-", event);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(line)) {
		va_start(ap, fmt);
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	emit(level, line);
}
