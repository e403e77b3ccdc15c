/*
 * syncgate-oidc: the start of an OpenID Connect login: GET /{db}/_oidc redirects to
 * the provider, GET /{db}/_oidc_challenge answers 401 naming that URL.
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

	sg_app_start(&app, "syncgate-oidc");
	sg_provider_prefetch(&app);
	rc = sg_request_serve(sg_oidc_handle_start, &app);
	sg_app_stop(&app);
	return rc;
}
