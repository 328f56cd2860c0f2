/* SPDX-License-Identifier: MIT */
/* Parsing and preparation of JIDs: an ASCII fast path, then libidn's stringprep and IDNA. */
#include "jid/jid.h"
#include "jid/internal.h"

#include "core/alloc.h"
#include "core/utf8.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <idna.h>
#include <netinet/in.h>
#include <stringprep.h>
#include <string.h>

/*
 * Which preparation, and why.
 *
 * RFC 7622 moved XMPP to PRECIS, but the servers and clients deployed today (Prosody,
 * ejabberd, jabberd2, most client libraries) still prepare JIDs with the RFC 6122 stringprep
 * profiles, so a JID prepared the way they do compares equal to theirs. We therefore use
 * nodeprep and resourceprep for the local and resource parts, and nameprep plus IDNA2003
 * ToASCII (with the STD3 rules) to validate each domain label.
 *
 * Unassigned code points (of Unicode 3.2, which is all libidn's tables know) are allowed, as
 * RFC 3454 §7 allows for queries: refusing them would refuse every emoji resource and every
 * script added since 2002, which other servers accept.
 *
 * A domain is kept in Unicode: each label is nameprep'd (so lower case, NFKC) and an A-label
 * ("xn--...") is turned into its U-label (RFC 7622 §3.2 wants U-labels in a domainpart), so
 * "xn--bcher-kva.example" and "bücher.example" are one domain. The ACE form is for DNS only.
 * An IP literal keeps its textual form, IPv6 in the RFC 5952 spelling inet_ntop gives.
 */

/* RFC 3490 §3.1: the full stop, ideographic, fullwidth and halfwidth full stops. */
static bool is_dot(uint32_t cp)
{
    return cp == 0x2E || cp == 0x3002 || cp == 0xFF0E || cp == 0xFF61;
}

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * A domain whose last label is all digits can only be an IPv4 address (no top-level domain
 * is numeric, RFC 3696 §2), so it must be one: RFC 7622 §3.2 allows the IPv4address form.
 */
static bool ipv4_ok(const char *d, size_t len)
{
    size_t last = len;
    while (last > 0 && d[last - 1] != '.')
        last--;
    for (size_t i = last; i < len; i++) {
        if (d[i] < '0' || d[i] > '9')
            return true;
    }
    char buf[INET_ADDRSTRLEN];
    struct in_addr a;
    if (len >= sizeof(buf))
        return false;
    memcpy(buf, d, len);
    buf[len] = '\0';
    return inet_pton(AF_INET, buf, &a) == 1;
}

/* Characters that nodeprep leaves alone and does not prohibit (RFC 3920 Appendix A.5). */
static bool node_ascii_prepared(unsigned char b)
{
    if (b <= 0x20 || b >= 0x7F || (b >= 'A' && b <= 'Z'))
        return false;
    return strchr("\"&'/:<>@", b) == NULL;
}

static enum jid_fast node_fast(const char *in, size_t len, size_t *out_len)
{
    bool slow = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)in[i];
        if (node_ascii_prepared(b))
            continue;
        if (b >= 0x80 || (b >= 'A' && b <= 'Z'))
            slow = true;
        else
            return JID_FAST_INVALID; /* no mapping removes an ASCII character */
    }
    if (slow)
        return JID_FAST_NEEDS_PREP;
    if (len == 0 || len > JID_PART_MAX)
        return JID_FAST_INVALID;
    *out_len = len;
    return JID_FAST_PREPARED;
}

/* resourceprep maps no ASCII and prohibits only the controls (RFC 3920 Appendix B). */
static enum jid_fast resource_fast(const char *in, size_t len, size_t *out_len)
{
    bool slow = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)in[i];
        if (b < 0x20 || b == 0x7F)
            return JID_FAST_INVALID;
        if (b >= 0x80)
            slow = true;
    }
    if (slow)
        return JID_FAST_NEEDS_PREP;
    if (len == 0 || len > JID_PART_MAX)
        return JID_FAST_INVALID;
    *out_len = len;
    return JID_FAST_PREPARED;
}

static bool ldh_lower(unsigned char b)
{
    return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '-';
}

static enum jid_fast domain_fast(const char *in, size_t len, size_t *out_len)
{
    if (len == 0)
        return JID_FAST_INVALID;
    if (in[0] == '[')
        return JID_FAST_NEEDS_PREP;
    bool slow = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char b = (unsigned char)in[i];
        if (ldh_lower(b) || b == '.')
            continue;
        if (b >= 0x80 || (b >= 'A' && b <= 'Z'))
            slow = true;
        else
            return JID_FAST_INVALID; /* the STD3 rules refuse it, nameprep keeps it */
    }
    if (slow)
        return JID_FAST_NEEDS_PREP;

    /* RFC 7622 §3.2: a trailing dot is not part of the domain. */
    size_t n = in[len - 1] == '.' ? len - 1 : len;
    if (n == 0 || n > JID_PART_MAX)
        return JID_FAST_INVALID;
    for (size_t start = 0; start < n;) {
        const char *dot = memchr(in + start, '.', n - start);
        size_t end = dot != NULL ? (size_t)(dot - in) : n;
        size_t l = end - start;
        if (l == 0 || l > 63 || in[start] == '-' || in[end - 1] == '-')
            return JID_FAST_INVALID;
        /* An A-label is prepared into its U-label. */
        if (l >= 4 && memcmp(in + start, "xn--", 4) == 0)
            return JID_FAST_NEEDS_PREP;
        if (dot == NULL)
            break;
        start = end + 1;
        if (start == n)
            return JID_FAST_INVALID;
    }
    if (!ipv4_ok(in, n))
        return JID_FAST_INVALID;
    *out_len = n;
    return JID_FAST_PREPARED;
}

enum jid_fast jid_part_check_fast(enum jid_part part, const char *in, size_t len, size_t *out_len)
{
    switch (part) {
    case JID_PART_NODE:
        return node_fast(in, len, out_len);
    case JID_PART_DOMAIN:
        return domain_fast(in, len, out_len);
    case JID_PART_RESOURCE:
        return resource_fast(in, len, out_len);
    }
    return JID_FAST_INVALID;
}

/*
 * Runs a stringprep profile over in[0..len). Flags 0: unassigned code points allowed (see
 * the top of this file). The buffer is larger than any valid result, so a result that does
 * not fit is too long anyway.
 */
static int prep_profile(const Stringprep_profile *profile, const char *in, size_t len, char *out,
                        size_t *out_len)
{
    char buf[JID_RAW_MAX + 1];
    if (len == 0 || len > JID_RAW_MAX || !core_utf8_valid(in, len))
        return -EINVAL;
    memcpy(buf, in, len);
    buf[len] = '\0';
    if (stringprep(buf, sizeof(buf), 0, profile) != STRINGPREP_OK)
        return -EINVAL;
    size_t n = strlen(buf);
    if (n == 0 || n > JID_PART_MAX)
        return -EINVAL;
    memcpy(out, buf, n + 1);
    *out_len = n;
    return 0;
}

/* An IP-literal (RFC 7622 §3.2, RFC 3986 §3.2.2), kept in the RFC 5952 text form. */
static int prep_ipv6(const char *in, size_t len, char *out, size_t *out_len)
{
    char addr[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if (len < 3 || in[len - 1] != ']' || len - 2 >= sizeof(addr))
        return -EINVAL;
    if (memchr(in + 1, '\0', len - 2) != NULL)
        return -EINVAL;
    memcpy(addr, in + 1, len - 2);
    addr[len - 2] = '\0';
    if (inet_pton(AF_INET6, addr, &a) != 1 || inet_ntop(AF_INET6, &a, addr, sizeof(addr)) == NULL)
        return -EINVAL;
    size_t n = strlen(addr);
    out[0] = '[';
    memcpy(out + 1, addr, n);
    out[n + 1] = ']';
    out[n + 2] = '\0';
    *out_len = n + 2;
    return 0;
}

#define LABEL_CP_MAX 63
#define IDNA_FLAGS (IDNA_ALLOW_UNASSIGNED | IDNA_USE_STD3_ASCII_RULES)

/* Code points of a nameprep'd label; more than 63 cannot fit a DNS label in any form. */
static int label_decode(const char *s, size_t len, uint32_t *cps, size_t *n)
{
    size_t count = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        if (count == LABEL_CP_MAX || !core_utf8_next(s, len, &i, &cp) || is_dot(cp))
            return -EINVAL;
        cps[count++] = cp;
    }
    if (count == 0)
        return -EINVAL;
    *n = count;
    return 0;
}

/*
 * Prepares one domain label into out (room bytes free). RFC 3490 §4: nameprep, then ToASCII
 * with the STD3 rules must succeed (LDH only, no leading or trailing hyphen, 1..63 octets);
 * an A-label must decode with ToUnicode and is replaced by its U-label.
 */
static int prep_label(const char *in, size_t len, char *out, size_t room, size_t *out_len)
{
    char buf[JID_RAW_MAX + 1];
    uint32_t cps[LABEL_CP_MAX + 1];
    size_t n;

    memcpy(buf, in, len);
    buf[len] = '\0';
    if (stringprep(buf, sizeof(buf), 0, stringprep_nameprep) != STRINGPREP_OK)
        return -EINVAL;
    if (label_decode(buf, strlen(buf), cps, &n) != 0)
        return -EINVAL;

    if (n >= 4 && memcmp(buf, IDNA_ACE_PREFIX, 4) == 0) {
        uint32_t u[LABEL_CP_MAX + 1];
        size_t ulen = LABEL_CP_MAX + 1;
        if (idna_to_unicode_44i(cps, n, u, &ulen, IDNA_FLAGS) != IDNA_SUCCESS || ulen == 0)
            return -EINVAL;
        for (size_t i = 0; i < ulen; i++) {
            /* A dot hidden in an A-label would split the label when parsed again. */
            if (is_dot(u[i]))
                return -EINVAL;
        }
        memcpy(cps, u, ulen * sizeof(u[0]));
        n = ulen;
    }

    /* libidn writes at most 64 bytes here; the zeroed rest keeps its strlen() in bounds. */
    char ace[128] = {0};
    if (idna_to_ascii_4i(cps, n, ace, IDNA_FLAGS) != IDNA_SUCCESS)
        return -EINVAL;

    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char enc[4];
        size_t k = utf8_put(cps[i], enc);
        if (room - o < k)
            return -EINVAL;
        memcpy(out + o, enc, k);
        o += k;
    }
    *out_len = o;
    return 0;
}

/* Length of a label separator ending s[0..len), or 0. */
static size_t trailing_dot(const char *s, size_t len)
{
    if (len >= 1 && s[len - 1] == '.')
        return 1;
    if (len >= 3 &&
        (memcmp(s + len - 3, "\xE3\x80\x82", 3) == 0 ||
         memcmp(s + len - 3, "\xEF\xBC\x8E", 3) == 0 ||
         memcmp(s + len - 3, "\xEF\xBD\xA1", 3) == 0))
        return 3;
    return 0;
}

static int prep_domain(const char *in, size_t len, char *out, size_t *out_len)
{
    if (len == 0 || len > JID_RAW_MAX)
        return -EINVAL;
    if (in[0] == '[')
        return prep_ipv6(in, len, out, out_len);
    if (!core_utf8_valid(in, len))
        return -EINVAL;
    len -= trailing_dot(in, len);
    if (len == 0)
        return -EINVAL;

    /* Split before preparing: a label's bidi rules apply to that label alone (RFC 3491). */
    size_t o = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len;) {
        size_t next = i;
        uint32_t cp = 0;
        if (i < len) {
            if (!core_utf8_next(in, len, &next, &cp))
                return -EINVAL;
            if (!is_dot(cp)) {
                i = next;
                continue;
            }
        }
        if (i == start)
            return -EINVAL;
        if (o != 0) {
            if (o >= JID_PART_MAX)
                return -EINVAL;
            out[o++] = '.';
        }
        size_t l;
        if (prep_label(in + start, i - start, out + o, JID_PART_MAX - o, &l) != 0)
            return -EINVAL;
        o += l;
        if (i == len)
            break;
        i = next;
        start = next;
    }
    out[o] = '\0';
    if (!ipv4_ok(out, o))
        return -EINVAL;
    *out_len = o;
    return 0;
}

int jid_part_prepare(enum jid_part part, const char *in, size_t len, char *out, size_t *out_len)
{
    switch (part) {
    case JID_PART_NODE:
        return prep_profile(stringprep_xmpp_nodeprep, in, len, out, out_len);
    case JID_PART_DOMAIN:
        return prep_domain(in, len, out, out_len);
    case JID_PART_RESOURCE:
        return prep_profile(stringprep_xmpp_resourceprep, in, len, out, out_len);
    }
    return -EINVAL;
}

/* Entries of a libidn table (its end is an all-zero entry); libidn searches by this size. */
static size_t table_len(const Stringprep_table_element *t)
{
    size_t n = 0;
    while (t[n].start != 0 || t[n].end != 0)
        n++;
    return n;
}

int jid_fold(const char *in, size_t len, char *out, size_t outcap, size_t *out_len)
{
    bool ascii = true;
    for (size_t i = 0; i < len; i++)
        ascii = ascii && (unsigned char)in[i] < 0x80;
    if (len == 0 || len > JID_PART_MAX || outcap < 4 * JID_PART_MAX + 1)
        return -EINVAL;
    if (ascii) {
        /* Table B.2 on ASCII is A-Z to a-z, and NFKC leaves ASCII alone. */
        for (size_t i = 0; i < len; i++)
            out[i] = in[i] >= 'A' && in[i] <= 'Z' ? (char)(in[i] + 32) : in[i];
        out[len] = '\0';
        *out_len = len;
        return 0;
    }
    if (!core_utf8_valid(in, len))
        return -EINVAL;
    /* Case folding as nameprep does it, without nameprep's prohibitions (a nick may hold a
     * space): tables B.1 and B.2, then NFKC. */
    const Stringprep_profile fold_profile[] = {
        {STRINGPREP_MAP_TABLE, 0, stringprep_rfc3454_B_1, table_len(stringprep_rfc3454_B_1)},
        {STRINGPREP_MAP_TABLE, 0, stringprep_rfc3454_B_2, table_len(stringprep_rfc3454_B_2)},
        {STRINGPREP_NFKC, 0, NULL, 0},
        {0, 0, NULL, 0},
    };
    memcpy(out, in, len);
    out[len] = '\0';
    if (stringprep(out, outcap, 0, fold_profile) != STRINGPREP_OK)
        return -EINVAL;
    *out_len = strlen(out);
    return *out_len > 0 ? 0 : -EINVAL;
}

/* Prepares one part into out (JID_PART_MAX + 1 bytes): fast path, then cache, then libidn. */
static int prep_part(jid_cache_t *c, enum jid_part part, const char *in, size_t len, char *out,
                     size_t *out_len)
{
    size_t n;
    switch (jid_part_check_fast(part, in, len, &n)) {
    case JID_FAST_PREPARED:
        memcpy(out, in, n);
        out[n] = '\0';
        *out_len = n;
        return 0;
    case JID_FAST_INVALID:
        return -EINVAL;
    case JID_FAST_NEEDS_PREP:
        break;
    }
    if (c == NULL)
        return jid_part_prepare(part, in, len, out, out_len);

    const char *cached;
    int rc;
    if (jid_cache_get(c, part, in, len, &cached, &n, &rc)) {
        if (rc == 0) {
            memcpy(out, cached, n + 1);
            *out_len = n;
        }
        return rc;
    }
    rc = jid_part_prepare(part, in, len, out, out_len);
    jid_cache_put(c, part, in, len, rc == 0 ? out : NULL, rc == 0 ? *out_len : 0);
    return rc;
}

struct span {
    const char *p;
    size_t len;
    bool present;
};

/*
 * RFC 7622 §3.2: the resource starts after the first '/', the node ends at the first '@'
 * before it. Separators are found before any preparation, which may create new ones.
 */
static int split(const char *s, size_t len, struct span *node, struct span *domain,
                 struct span *res)
{
    if (len == 0)
        return -EINVAL;
    const char *slash = memchr(s, '/', len);
    size_t bare = slash != NULL ? (size_t)(slash - s) : len;
    const char *at = memchr(s, '@', bare);

    *node = (struct span){0};
    *res = (struct span){0};
    if (at != NULL) {
        *node = (struct span){.p = s, .len = (size_t)(at - s), .present = true};
        *domain = (struct span){.p = at + 1, .len = bare - node->len - 1, .present = true};
    } else {
        *domain = (struct span){.p = s, .len = bare, .present = true};
    }
    if (slash != NULL)
        *res = (struct span){.p = slash + 1, .len = len - bare - 1, .present = true};

    /* RFC 7622 §3.3.1, §3.4.1: a separator with nothing after (or before) it is malformed. */
    if ((node->present && node->len == 0) || domain->len == 0 || (res->present && res->len == 0))
        return -EINVAL;
    return 0;
}

int jid_parse(jid_cache_t *cache, const char *s, size_t len, jid_t *out)
{
    char node[JID_PART_MAX + 1];
    char dom[JID_PART_MAX + 1];
    char res[JID_PART_MAX + 1];
    size_t nlen = 0, dlen = 0, rlen = 0;
    struct span ns, ds, rs;
    int rc;

    *out = (jid_t){0};
    if ((rc = split(s, len, &ns, &ds, &rs)) != 0)
        return rc;
    if (ns.present && (rc = prep_part(cache, JID_PART_NODE, ns.p, ns.len, node, &nlen)) != 0)
        return rc;
    if ((rc = prep_part(cache, JID_PART_DOMAIN, ds.p, ds.len, dom, &dlen)) != 0)
        return rc;
    if (rs.present && (rc = prep_part(cache, JID_PART_RESOURCE, rs.p, rs.len, res, &rlen)) != 0)
        return rc;

    size_t domain_off = nlen != 0 ? nlen + 1 : 0;
    size_t bare_len = domain_off + dlen;
    size_t full_len = bare_len + (rlen != 0 ? rlen + 1 : 0);
    char *full = core_malloc(full_len + 1);
    if (nlen != 0) {
        memcpy(full, node, nlen);
        full[nlen] = '@';
    }
    memcpy(full + domain_off, dom, dlen);
    if (rlen != 0) {
        full[bare_len] = '/';
        memcpy(full + bare_len + 1, res, rlen);
    }
    full[full_len] = '\0';

    *out = (jid_t){
        .full = full,
        .full_len = full_len,
        .node_len = nlen,
        .domain_off = domain_off,
        .domain_len = dlen,
        .bare_len = bare_len,
        .res_len = rlen,
    };
    return 0;
}

void jid_clear(jid_t *j)
{
    core_free(j->full);
    *j = (jid_t){0};
}

void jid_copy(jid_t *dst, const jid_t *src)
{
    *dst = *src;
    dst->full = src->full != NULL ? core_strndup(src->full, src->full_len) : NULL;
}

int jid_domain_raw(const char *s, size_t len, const char **dom, size_t *dlen)
{
    struct span ns, ds, rs;
    int rc = split(s, len, &ns, &ds, &rs);
    if (rc != 0)
        return rc;
    *dom = ds.p;
    *dlen = ds.len;
    return 0;
}

int jid_domain(jid_cache_t *cache, const char *s, size_t len, const char **dom, size_t *dlen)
{
    struct span ns, ds, rs;
    const char *cached;
    size_t n;
    int rc;

    /* A prepared domain that is not in s lives in the cache, so there must be one. */
    assert(cache != NULL);
    if ((rc = split(s, len, &ns, &ds, &rs)) != 0)
        return rc;
    switch (jid_part_check_fast(JID_PART_DOMAIN, ds.p, ds.len, &n)) {
    case JID_FAST_PREPARED:
        *dom = ds.p;
        *dlen = n;
        return 0;
    case JID_FAST_INVALID:
        return -EINVAL;
    case JID_FAST_NEEDS_PREP:
        break;
    }
    if (jid_cache_get(cache, JID_PART_DOMAIN, ds.p, ds.len, &cached, &n, &rc)) {
        if (rc == 0) {
            *dom = cached;
            *dlen = n;
        }
        return rc;
    }
    char *scratch = jid_cache_scratch(cache);
    rc = jid_part_prepare(JID_PART_DOMAIN, ds.p, ds.len, scratch, &n);
    const char *stored = jid_cache_put(cache, JID_PART_DOMAIN, ds.p, ds.len,
                                       rc == 0 ? scratch : NULL, rc == 0 ? n : 0);
    if (rc != 0)
        return rc;
    *dom = stored != NULL ? stored : scratch;
    *dlen = n;
    return 0;
}

bool jid_equal(const jid_t *a, const jid_t *b)
{
    return a->full_len == b->full_len &&
        (a->full_len == 0 || memcmp(a->full, b->full, a->full_len) == 0);
}

bool jid_bare_equal(const jid_t *a, const jid_t *b)
{
    return a->bare_len == b->bare_len &&
        (a->bare_len == 0 || memcmp(a->full, b->full, a->bare_len) == 0);
}
