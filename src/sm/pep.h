/* SPDX-License-Identifier: MIT */
/* mod_pep.c's interface for sm modules built on an account's PEP service (XEP-0402). */
#ifndef PARLEY_SM_PEP_H
#define PARLEY_SM_PEP_H

#include "pubsub/pubsub.h"
#include "sm/internal.h"

/*
 * The account's PEP service (XEP-0163), with its stored nodes loaded, for a module that works
 * on it directly (the XEP-0402 compatibility layer) with the pubsub_* functions: their
 * notifications are held until sm_pep_commit, which also writes what changed. u must be
 * READY. NULL when the pep module is off.
 */
pubsub_service_t *sm_pep_begin(sm_t *sm, sm_user_t *u);
/* Writes the nodes changed since sm_pep_begin and sends the notifications held. */
void sm_pep_commit(sm_t *sm, sm_user_t *u);
/* True when the pep module is on (modules built on it check at init). */
bool sm_pep_enabled(const sm_t *sm);
/*
 * The configuration a node of this id gets when it is created (auto-created by a publish or
 * created without a form): cfg is copied; node is borrowed and must outlive the sm. XEP-0402
 * §3 wants its node private whoever creates it first. Returns 0, or -ENOENT when pep is off.
 */
int sm_pep_node_defaults(sm_t *sm, const char *node, const pubsub_config_t *cfg);

#endif
