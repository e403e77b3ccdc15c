/*
 * syncgate-user-admin: the admin API for users, roles, GUEST and the
 * sessions an administrator makes or ends (/{db}/_user/..., /{db}/_role/...,
 * /{db}/_session[/{id}]).  It belongs on the admin side only (127.0.0.1:4985
 * in the web-server examples).  The work is done by lib/admin.c.
 */
#include "autoconf.h"

#include "admin.h"
#include "app.h"

int
main(void)
{
	struct sg_app app;
	int rc;

	sg_app_start(&app, "syncgate-user-admin");
	rc = sg_request_serve(sg_admin_handle, &app);
	sg_app_stop(&app);
	return rc;
}
