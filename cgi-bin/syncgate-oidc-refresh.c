/*
 * syncgate-oidc-refresh: GET /{db}/_oidc_refresh: a refresh grant at the provider, a new
 * ID token and a new session.
 */
#include "autoconf.h"

#include "app.h"
#include "oidc.h"
#include "provider.h"

int
main(void)
{
	struct sg_app app;
	int rc;

	sg_app_start(&app, "syncgate-oidc-refresh");
	sg_provider_prefetch(&app);
	rc = sg_request_serve(sg_oidc_handle_refresh, &app);
	sg_app_stop(&app);
	return rc;
}
