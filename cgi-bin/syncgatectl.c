/*
 * syncgatectl: the administrator's command line for syncgate: checks the
 * configuration, hashes admin passwords, manages users and roles, purges
 * sessions and maintains the store.  The work is done by lib/ctl.c.
 */
#include "autoconf.h"

#include "ctl.h"

int
main(int argc, char **argv)
{
	return sg_ctl_main(argc, argv);
}
