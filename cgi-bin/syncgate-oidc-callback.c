/*
 * syncgate-oidc-callback: the end of an OpenID Connect login: GET /{db}/_oidc_callback
 * exchanges the code, validates the ID token and creates the session.
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

	sg_app_start(&app, "syncgate-oidc-callback");
	sg_provider_prefetch(&app);
	rc = sg_request_serve(sg_oidc_handle_callback, &app);
	sg_app_stop(&app);
	return rc;
}
