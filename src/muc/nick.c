/* SPDX-License-Identifier: MIT */
/* Room nicks: what may be one (XEP-0045 §15.1) and when two are the same (§7.2.9). */
#include "muc/internal.h"

#include "core/utf8.h"

#include <errno.h>

int muc_nick_fold(const char *nick, size_t len, char *out, size_t *out_len)
{
    return jid_fold(nick, len, out, MUC_NICK_FOLD_MAX + 1, out_len);
}

/* Unicode space separators (Zs) and the invisible characters Resourceprep keeps. */
static bool is_blank(uint32_t cp)
{
    return cp == 0x20 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F) ||
        cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x2060 ||
        cp == 0x3000 || cp == 0xFEFF || cp == 0x3164 || cp == 0x115F || cp == 0x1160 ||
        cp == 0xFFA0;
}

bool muc_nick_valid(const char *nick, size_t len)
{
    size_t i = 0;
    uint32_t cp;
    bool visible = false;
    while (i < len) {
        if (!core_utf8_next(nick, len, &i, &cp))
            return false;
        if (!is_blank(cp))
            visible = true;
    }
    /* §15.1: "MUST NOT allow empty or invisible Room Nicknames". */
    return visible;
}
