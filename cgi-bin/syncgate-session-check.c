/*
 * syncgate-session-check: the FastCGI authorizer in front of every
 * replication request, and the /{db}/_session responder.
 */
#include "autoconf.h"

#include "app.h"
#include "check.h"
#include "provider.h"

int
main(void)
{
	struct sg_app app;
	int rc;

	sg_app_start(&app, "syncgate-session-check");
	sg_provider_prefetch(&app);
	rc = sg_request_serve(sg_check_handle, &app);
	sg_app_stop(&app);
	return rc;
}
