/* SPDX-License-Identifier: MIT */
/* The auth source backed by the account store. */
#ifndef PARLEY_AUTH_STORAGE_SOURCE_H
#define PARLEY_AUTH_STORAGE_SOURCE_H

#include "auth/auth.h"
#include "storage/storage.h"

/*
 * Looks users up in st, and creates accounts there (borrowed; it must outlive the source and
 * stay open until the source's pending requests have answered). The domain is not used: one
 * store serves one domain. Free with auth_source_free; requests still in flight then answer
 * -ECANCELED.
 */
auth_source_t *auth_storage_new(storage_t *st);

#endif
