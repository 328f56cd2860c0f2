/* SPDX-License-Identifier: MIT */
/* Names and default types of XMPP error conditions. */
#include "xmpp_error.h"

static const char *const stream_names[] = {
    [CORE_STREAM_ERR_NONE] = "undefined-condition",
    [CORE_STREAM_ERR_BAD_FORMAT] = "bad-format",
    [CORE_STREAM_ERR_BAD_NAMESPACE_PREFIX] = "bad-namespace-prefix",
    [CORE_STREAM_ERR_CONFLICT] = "conflict",
    [CORE_STREAM_ERR_CONNECTION_TIMEOUT] = "connection-timeout",
    [CORE_STREAM_ERR_HOST_GONE] = "host-gone",
    [CORE_STREAM_ERR_HOST_UNKNOWN] = "host-unknown",
    [CORE_STREAM_ERR_IMPROPER_ADDRESSING] = "improper-addressing",
    [CORE_STREAM_ERR_INTERNAL_SERVER_ERROR] = "internal-server-error",
    [CORE_STREAM_ERR_INVALID_FROM] = "invalid-from",
    [CORE_STREAM_ERR_INVALID_NAMESPACE] = "invalid-namespace",
    [CORE_STREAM_ERR_INVALID_XML] = "invalid-xml",
    [CORE_STREAM_ERR_NOT_AUTHORIZED] = "not-authorized",
    [CORE_STREAM_ERR_NOT_WELL_FORMED] = "not-well-formed",
    [CORE_STREAM_ERR_POLICY_VIOLATION] = "policy-violation",
    [CORE_STREAM_ERR_REMOTE_CONNECTION_FAILED] = "remote-connection-failed",
    [CORE_STREAM_ERR_RESET] = "reset",
    [CORE_STREAM_ERR_RESOURCE_CONSTRAINT] = "resource-constraint",
    [CORE_STREAM_ERR_RESTRICTED_XML] = "restricted-xml",
    [CORE_STREAM_ERR_SEE_OTHER_HOST] = "see-other-host",
    [CORE_STREAM_ERR_SYSTEM_SHUTDOWN] = "system-shutdown",
    [CORE_STREAM_ERR_UNDEFINED_CONDITION] = "undefined-condition",
    [CORE_STREAM_ERR_UNSUPPORTED_ENCODING] = "unsupported-encoding",
    [CORE_STREAM_ERR_UNSUPPORTED_FEATURE] = "unsupported-feature",
    [CORE_STREAM_ERR_UNSUPPORTED_STANZA_TYPE] = "unsupported-stanza-type",
    [CORE_STREAM_ERR_UNSUPPORTED_VERSION] = "unsupported-version",
};

/* Name, RFC 6120 §8.3.3 type, and XEP-0086's legacy code (0: it has none). */
static const struct {
    const char *name;
    const char *type;
    int code;
} stanza_conds[] = {
    [CORE_STANZA_ERR_BAD_REQUEST] = {"bad-request", "modify", 400},
    [CORE_STANZA_ERR_CONFLICT] = {"conflict", "cancel", 409},
    [CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED] = {"feature-not-implemented", "cancel", 501},
    [CORE_STANZA_ERR_FORBIDDEN] = {"forbidden", "auth", 403},
    [CORE_STANZA_ERR_GONE] = {"gone", "cancel", 302},
    [CORE_STANZA_ERR_INTERNAL_SERVER_ERROR] = {"internal-server-error", "cancel", 500},
    [CORE_STANZA_ERR_ITEM_NOT_FOUND] = {"item-not-found", "cancel", 404},
    [CORE_STANZA_ERR_JID_MALFORMED] = {"jid-malformed", "modify", 400},
    [CORE_STANZA_ERR_NOT_ACCEPTABLE] = {"not-acceptable", "modify", 406},
    [CORE_STANZA_ERR_NOT_ALLOWED] = {"not-allowed", "cancel", 405},
    [CORE_STANZA_ERR_NOT_AUTHORIZED] = {"not-authorized", "auth", 401},
    [CORE_STANZA_ERR_POLICY_VIOLATION] = {"policy-violation", "modify", 0},
    [CORE_STANZA_ERR_RECIPIENT_UNAVAILABLE] = {"recipient-unavailable", "wait", 404},
    [CORE_STANZA_ERR_REDIRECT] = {"redirect", "modify", 302},
    [CORE_STANZA_ERR_REGISTRATION_REQUIRED] = {"registration-required", "auth", 407},
    [CORE_STANZA_ERR_REMOTE_SERVER_NOT_FOUND] = {"remote-server-not-found", "cancel", 404},
    [CORE_STANZA_ERR_REMOTE_SERVER_TIMEOUT] = {"remote-server-timeout", "wait", 504},
    [CORE_STANZA_ERR_RESOURCE_CONSTRAINT] = {"resource-constraint", "wait", 500},
    [CORE_STANZA_ERR_SERVICE_UNAVAILABLE] = {"service-unavailable", "cancel", 503},
    [CORE_STANZA_ERR_SUBSCRIPTION_REQUIRED] = {"subscription-required", "auth", 407},
    [CORE_STANZA_ERR_UNDEFINED_CONDITION] = {"undefined-condition", "cancel", 500},
    [CORE_STANZA_ERR_UNEXPECTED_REQUEST] = {"unexpected-request", "wait", 400},
};

const char *core_stream_err_name(core_stream_err_t e)
{
    return stream_names[e];
}

const char *core_stanza_err_name(core_stanza_err_t e)
{
    return stanza_conds[e].name;
}

const char *core_stanza_err_type(core_stanza_err_t e)
{
    return stanza_conds[e].type;
}

int core_stanza_err_code(core_stanza_err_t e)
{
    return stanza_conds[e].code;
}
