/*
 * log.h: one line per event, to syslog or stderr.
 *
 * Lines carry the program (as the syslog ident or a stderr prefix), the
 * database, the user and the outcome.  Nothing here knows what a secret
 * is, so callers never pass one: a session id or token is logged only as
 * sg_secure_tag() of it.  Control characters in any argument are replaced
 * so a hostile name cannot forge a second line.
 */
#ifndef SG_LOG_H
#define SG_LOG_H

enum sg_log_level { SG_LOG_ERR = 0, SG_LOG_WARN = 1, SG_LOG_INFO = 2, SG_LOG_DEBUG = 3 };

/*
 * Sets the program name (borrowed; must outlive logging), the sink and the
 * threshold.  Before the first call, lines go to stderr at level info.
 */
void sg_log_open(const char *program, int use_syslog, enum sg_log_level level);

/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int sg_log_level_parse(const char *name);

/* Logs a free-form line. */
void sg_log(enum sg_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Logs one event: "db=<db> user=<user> <event>: <outcome>".  db and user
 * may be NULL (logged as "-").
 */
void sg_log_event(enum sg_log_level level, const char *db, const char *user, const char *event,
	const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
