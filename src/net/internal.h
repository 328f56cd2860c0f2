/* SPDX-License-Identifier: MIT */
/* Declarations shared by the files of src/net only. */
#ifndef PARLEY_NET_INTERNAL_H
#define PARLEY_NET_INTERNAL_H

#include "net/net.h"

/* A connection struct with its TCP handle initialised and an id for the logs. */
net_conn_t *net_conn_alloc(net_ctx_t *ctx);
/* Sets up a connection once TCP is established (no Nagle, peer name for the logs). */
void net_conn_accepted(net_conn_t *c);

#endif
