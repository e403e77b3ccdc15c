/*
 * ctl.h: syncgatectl, the administrator's command line (SPEC sections 2-5).
 *
 * Checks the configuration, makes password hashes for admin_users, adds,
 * lists and deletes users and roles with the same rules as the admin API,
 * purges expired sessions, and verifies, backs up, restores and
 * checkpoints the store.  All of it lives here so that tests can reach it; the program
 * cgi-bin/syncgatectl.c only calls sg_ctl_main.
 */
#ifndef SG_CTL_H
#define SG_CTL_H

/* Exit statuses of sg_ctl_main. */
#define SG_CTL_OK 0
#define SG_CTL_FAIL 1  /* the command failed: one line on stderr says why */
#define SG_CTL_USAGE 2 /* the command line was wrong: usage on stderr */

/*
 * Runs the command line argv (argv[0] is the program).  Results go to
 * standard output, errors to standard error as one line
 * "syncgatectl: <what>".  Passwords are read from standard input only,
 * never from argv, and are never printed or logged.  Returns the exit
 * status.
 */
int sg_ctl_main(int argc, char **argv);

#endif
