/*
 * admin.h: the user and role administration API (SPEC section 5).
 *
 * Sync Gateway's admin endpoints for one database: users, roles, GUEST
 * and sessions made on a user's behalf.  Served by syncgate-user-admin
 * on the admin side only; every request must first pass sg_auth_admin.
 */
#ifndef SG_ADMIN_H
#define SG_ADMIN_H

#include "request.h"

/*
 * Answers one admin request: /{db}/_user/..., /{db}/_role/...,
 * /{db}/_session[/{id}].  ctx is the program's struct sg_app (borrowed).
 * Always sends a response.
 */
void sg_admin_handle(struct sg_request *r, void *ctx);

#endif
