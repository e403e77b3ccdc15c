/*
 * check.h: syncgate-session-check, the authorizer in front of every
 * replication request and the /{db}/_session responder (SPEC section 6).
 */
#ifndef SG_CHECK_H
#define SG_CHECK_H

#include "request.h"

/* The request handler; ctx is the program's struct sg_app. */
void sg_check_handle(struct sg_request *r, void *ctx);

#endif
