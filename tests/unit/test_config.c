/* SPDX-License-Identifier: MIT */
/* Unit tests of the configuration parser: every type, every error with its line, ownership. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/alloc.h"
#include "core/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the schema under test ---- */

struct server {
    char *name;
    int64_t port;
    bool tls;
    uint64_t stanza;
    uint64_t idle;
    int level;
    core_cfg_list_t hosts;
    char *motd;
};

static const char *const levels[] = {"error", "warn", "info", "debug", NULL};

static const core_cfg_key_t server_keys[] = {
    {.name = "name",
     .type = CORE_CFG_STR,
     .offset = offsetof(struct server, name),
     .required = true},
    {.name = "port",
     .type = CORE_CFG_INT,
     .offset = offsetof(struct server, port),
     .def = "5222",
     .min = 1,
     .max = 65535},
    {.name = "tls", .type = CORE_CFG_BOOL, .offset = offsetof(struct server, tls), .def = "yes"},
    {.name = "stanza",
     .type = CORE_CFG_SIZE,
     .offset = offsetof(struct server, stanza),
     .def = "64K",
     .min = 1024,
     .max = 16 * 1024 * 1024},
    {.name = "idle",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(struct server, idle),
     .def = "5m",
     .min = 100,
     .max = 3600000},
    {.name = "level",
     .type = CORE_CFG_ENUM,
     .offset = offsetof(struct server, level),
     .def = "info",
     .choices = levels},
    {.name = "hosts",
     .type = CORE_CFG_LIST,
     .offset = offsetof(struct server, hosts),
     .def = "localhost, example.org"},
    {.name = "motd", .type = CORE_CFG_STR, .offset = offsetof(struct server, motd)},
};

static const core_cfg_section_t server_sec = {
    .name = "server",
    .size = sizeof(struct server),
    .keys = server_keys,
    .nkeys = sizeof server_keys / sizeof server_keys[0],
};

struct limits {
    int64_t count;
    int64_t neg;
    uint64_t big;
    uint64_t dur;
    bool flag;
    core_cfg_list_t tags;
};

static int limits_check(void *data, char *err, size_t errlen)
{
    const struct limits *l = data;
    if (l->count == 13) {
        snprintf(err, errlen, "count must not be 13");
        return -EINVAL;
    }
    return 0;
}

static const core_cfg_key_t limits_keys[] = {
    {.name = "count", .type = CORE_CFG_INT, .offset = offsetof(struct limits, count)},
    {.name = "neg",
     .type = CORE_CFG_INT,
     .offset = offsetof(struct limits, neg),
     .def = "-5",
     .min = -10,
     .max = -1},
    {.name = "big", .type = CORE_CFG_SIZE, .offset = offsetof(struct limits, big)},
    {.name = "dur", .type = CORE_CFG_MSEC, .offset = offsetof(struct limits, dur)},
    {.name = "flag", .type = CORE_CFG_BOOL, .offset = offsetof(struct limits, flag)},
    {.name = "tags", .type = CORE_CFG_LIST, .offset = offsetof(struct limits, tags)},
};

static const core_cfg_section_t limits_sec = {
    .name = "limits",
    .size = sizeof(struct limits),
    .keys = limits_keys,
    .nkeys = sizeof limits_keys / sizeof limits_keys[0],
    .check = limits_check,
};

struct paths {
    char *data;
    char *abs;
    char *plain;
    char *dot;
};

static const core_cfg_key_t paths_keys[] = {
    {.name = "data",
     .type = CORE_CFG_STR,
     .offset = offsetof(struct paths, data),
     .def = "data",
     .is_path = true},
    {.name = "abs", .type = CORE_CFG_STR, .offset = offsetof(struct paths, abs), .is_path = true},
    {.name = "plain",
     .type = CORE_CFG_STR,
     .offset = offsetof(struct paths, plain),
     .def = "rel/x"},
    {.name = "dot", .type = CORE_CFG_STR, .offset = offsetof(struct paths, dot), .is_path = true},
};

static const core_cfg_section_t paths_sec = {
    .name = "paths",
    .size = sizeof(struct paths),
    .keys = paths_keys,
    .nkeys = sizeof paths_keys / sizeof paths_keys[0],
};

struct listen {
    char *label;
    char *addr;
    int64_t port;
};

static int listen_check(void *data, char *err, size_t errlen)
{
    const struct listen *l = data;
    if (l->port == 0) {
        snprintf(err, errlen, "port 0 is reserved");
        return -EINVAL;
    }
    return 0;
}

static const core_cfg_key_t listen_keys[] = {
    {.name = "addr",
     .type = CORE_CFG_STR,
     .offset = offsetof(struct listen, addr),
     .required = true},
    {.name = "port", .type = CORE_CFG_INT, .offset = offsetof(struct listen, port), .def = "5222"},
};

static const core_cfg_section_t listen_sec = {
    .name = "listen",
    .labelled = true,
    .size = sizeof(struct listen),
    .label_offset = offsetof(struct listen, label),
    .keys = listen_keys,
    .nkeys = sizeof listen_keys / sizeof listen_keys[0],
    .check = listen_check,
};

static const core_cfg_section_t *const schema[] = {&server_sec, &limits_sec, &paths_sec,
                                                   &listen_sec};
#define NSCHEMA (sizeof schema / sizeof schema[0])

/* ---- helpers ---- */

static size_t baseline;

static int setup(void **state)
{
    baseline = core_alloc_bytes();
    return 0;
}

/* Every test must give back all it took through core_malloc: core_cfg_free is complete. */
static int teardown(void **state)
{
    assert_int_equal(core_alloc_bytes(), baseline);
    return 0;
}

static int load(core_cfg_t *cfg, const char *text, char *err, size_t errlen)
{
    return core_cfg_load_text(cfg, "/etc/parley/t.conf", text, strlen(text), schema, NSCHEMA, err,
                              errlen);
}

/* Loads text that must fail with exactly msg, and checks the config was left empty. */
static void expect_error(const char *text, const char *msg)
{
    core_cfg_t cfg;
    char err[512];
    int rc =
        core_cfg_load_text(&cfg, "t.conf", text, strlen(text), schema, NSCHEMA, err, sizeof err);
    if (rc != -EINVAL || strcmp(err, msg) != 0)
        fprintf(stderr, "text:\n%s\nwant: %s\ngot (%d): %s\n", text, msg, rc, err);
    assert_int_equal(rc, -EINVAL);
    assert_string_equal(err, msg);
    assert_int_equal(cfg.count, 0);
    assert_null(cfg.items);
    assert_null(cfg.path);
    assert_null(cfg.dir);
}

/* Loads "[server] name = x" plus one line in a section; returns the section's data. */
static void *load_one(core_cfg_t *cfg, const char *section, const char *line)
{
    char text[1024], err[512] = "";
    snprintf(text, sizeof text, "[server]\nname = x\n[%s]\n%s\n", section, line);
    int rc = load(cfg, text, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    return core_cfg_get(cfg, section);
}

/* Loads one line that must fail with "t.conf:4: key ..." (line 4: after the prologue). */
static void expect_value_error(const char *section, const char *line, const char *msg)
{
    char text[1024], want[1024];
    snprintf(text, sizeof text, "[server]\nname = x\n\n[%s]\n%s\n", section, line);
    snprintf(want, sizeof want, "t.conf:5: %s", msg);
    expect_error(text, want);
}

static char tmpdir[PATH_MAX];

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* ---- defaults and lookup ---- */

static void test_defaults(void **state)
{
    core_cfg_t cfg;
    char err[512] = "";
    assert_int_equal(load(&cfg, "[server]\nname = x\n", err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(cfg.path, "/etc/parley/t.conf");
    assert_string_equal(cfg.dir, "/etc/parley");
    /* One item per unlabelled section, none for the absent labelled one. */
    assert_int_equal(cfg.count, 3);

    struct server *s = core_cfg_get(&cfg, "server");
    assert_non_null(s);
    assert_string_equal(s->name, "x");
    assert_int_equal(s->port, 5222);
    assert_true(s->tls);
    assert_int_equal(s->stanza, 64 * 1024);
    assert_int_equal(s->idle, 5 * 60 * 1000);
    assert_int_equal(s->level, 2);
    assert_int_equal(s->hosts.count, 2);
    assert_string_equal(s->hosts.items[0], "localhost");
    assert_string_equal(s->hosts.items[1], "example.org");
    assert_null(s->motd);

    struct limits *l = core_cfg_get(&cfg, "limits");
    assert_non_null(l);
    assert_int_equal(l->count, 0);
    assert_int_equal(l->neg, -5);
    assert_false(l->flag);
    assert_int_equal(l->tags.count, 0);
    assert_null(l->tags.items);

    struct paths *p = core_cfg_get(&cfg, "paths");
    assert_string_equal(p->data, "/etc/parley/data"); /* a default path is resolved too */
    assert_string_equal(p->plain, "rel/x");
    assert_null(p->abs);

    /* Absent sections come with line 0 and the file name; present ones with their line. */
    for (size_t i = 0; i < cfg.count; i++) {
        assert_string_equal(cfg.items[i].file, "/etc/parley/t.conf");
        if (cfg.items[i].data == s)
            assert_int_equal(cfg.items[i].line, 1);
        else
            assert_int_equal(cfg.items[i].line, 0);
    }

    assert_null(core_cfg_get(&cfg, "listen")); /* labelled: use core_cfg_next */
    assert_null(core_cfg_get(&cfg, "nope"));
    size_t pos = 0;
    assert_null(core_cfg_next(&cfg, "listen", &pos));
    pos = 0;
    assert_null(core_cfg_next(&cfg, "server", &pos));
    core_cfg_free(&cfg);
    assert_null(cfg.items);
    core_cfg_free(&cfg); /* freeing an empty config is harmless */
}

static void test_file_overrides_default(void **state)
{
    core_cfg_t cfg;
    char err[512];
    const char *text = "[server]\n"
                       "name = x\n"
                       "port = 5269\n"
                       "tls = off\n"
                       "stanza = 1M\n"
                       "idle = 250ms\n"
                       "level = debug\n"
                       "hosts = a\n"
                       "motd = hi\n";
    assert_int_equal(load(&cfg, text, err, sizeof err), 0);
    struct server *s = core_cfg_get(&cfg, "server");
    assert_int_equal(s->port, 5269);
    assert_false(s->tls);
    assert_int_equal(s->stanza, 1024 * 1024);
    assert_int_equal(s->idle, 250);
    assert_int_equal(s->level, 3);
    assert_int_equal(s->hosts.count, 1);
    assert_string_equal(s->hosts.items[0], "a");
    assert_string_equal(s->motd, "hi");
    core_cfg_free(&cfg);
}

/* ---- types ---- */

static void test_int(void **state)
{
    core_cfg_t cfg;
    struct limits *l;
    static const struct {
        const char *text;
        int64_t want;
    } ok[] = {
        {"0", 0},
        {"42", 42},
        {"+7", 7},
        {"-7", -7},
        {"007", 7},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "count = %s", ok[i].text);
        l = load_one(&cfg, "limits", line);
        assert_int_equal(l->count, ok[i].want);
        core_cfg_free(&cfg);
    }
    const char *full = "is out of range: must be between -9223372036854775808 and "
                       "9223372036854775807";
    char want[256];
    snprintf(want, sizeof want, "key 'count' %s", full);
    expect_value_error("limits", "count = 9223372036854775808", want);
    expect_value_error("limits", "count = -9223372036854775809", want);
    expect_value_error("limits", "count = 99999999999999999999999", want);
    expect_value_error("limits", "count = 12x",
                       "key 'count' expects an integer like 42, got '12x'");
    expect_value_error("limits", "count = 0x10",
                       "key 'count' expects an integer like 42, got '0x10'");
    expect_value_error("limits", "count = - 1",
                       "key 'count' expects an integer like 42, got '- 1'");
    expect_value_error("limits", "count = 1.5",
                       "key 'count' expects an integer like 42, got '1.5'");
    expect_value_error("limits", "count = \"\"", "key 'count' expects an integer like 42, got ''");

    /* Range: both ends inclusive, negative ranges too. */
    l = load_one(&cfg, "limits", "neg = -10");
    assert_int_equal(l->neg, -10);
    core_cfg_free(&cfg);
    l = load_one(&cfg, "limits", "neg = -1");
    assert_int_equal(l->neg, -1);
    core_cfg_free(&cfg);
    expect_value_error("limits", "neg = 0",
                       "key 'neg' is out of range: must be between -10 and -1");
    expect_value_error("limits", "neg = -11",
                       "key 'neg' is out of range: must be between -10 and -1");
    core_cfg_t c2;
    char err[512];
    assert_int_equal(load(&c2, "[server]\nname = x\nport = 65535\n", err, sizeof err), 0);
    assert_int_equal(((struct server *)core_cfg_get(&c2, "server"))->port, 65535);
    core_cfg_free(&c2);
    expect_error("[server]\nname = x\nport = 65536\n",
                 "t.conf:3: key 'port' is out of range: must be between 1 and 65535");
    expect_error("[server]\nname = x\nport = 0\n",
                 "t.conf:3: key 'port' is out of range: must be between 1 and 65535");
}

static void test_bool(void **state)
{
    static const struct {
        const char *text;
        bool want;
    } ok[] = {
        {"yes", true},  {"no", false}, {"true", true}, {"false", false}, {"on", true},
        {"off", false}, {"YES", true}, {"Off", false}, {"\"on\"", true},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        core_cfg_t cfg;
        char line[64];
        snprintf(line, sizeof line, "flag = %s", ok[i].text);
        struct limits *l = load_one(&cfg, "limits", line);
        assert_int_equal(l->flag, ok[i].want);
        core_cfg_free(&cfg);
    }
    expect_value_error("limits", "flag = 1",
                       "key 'flag' expects yes/no, true/false or on/off, got '1'");
    expect_value_error("limits", "flag = maybe",
                       "key 'flag' expects yes/no, true/false or on/off, got 'maybe'");
}

static void test_size(void **state)
{
    static const struct {
        const char *text;
        uint64_t want;
    } ok[] = {
        {"0", 0},
        {"1", 1},
        {"100b", 100},
        {"64K", 64 * 1024},
        {"64k", 64 * 1024},
        {"64KiB", 64 * 1024},
        {"64kb", 64 * 1024},
        {"3 M", 3 * 1024 * 1024},
        {"3mib", 3 * 1024 * 1024},
        {"2G", UINT64_C(2) * 1024 * 1024 * 1024},
        {"2GiB", UINT64_C(2) * 1024 * 1024 * 1024},
        {"17179869183G", UINT64_C(17179869183) * 1024 * 1024 * 1024},
        {"18446744073709551615", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        core_cfg_t cfg;
        char line[64];
        snprintf(line, sizeof line, "big = %s", ok[i].text);
        struct limits *l = load_one(&cfg, "limits", line);
        assert_int_equal(l->big, ok[i].want);
        core_cfg_free(&cfg);
    }
    const char *type = "key 'big' expects a size like 64K (suffixes K, M, G), got";
    char want[256];
    static const char *const bad[] = {"big", "-1", "+1", "1.5K", "1T", "K", "1KK", "1 K B"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "big = %s", bad[i]);
        snprintf(want, sizeof want, "%s '%s'", type, bad[i]);
        expect_value_error("limits", line, want);
    }
    expect_value_error("limits", "big = 17179869184G",
                       "key 'big' is out of range: a size must fit in 64 bits");
    expect_value_error("limits", "big = 18446744073709551616",
                       "key 'big' is out of range: a size must fit in 64 bits");

    /* The range of [server] stanza is 1K..16M, both ends inclusive. */
    core_cfg_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, "[server]\nname = x\nstanza = 1024\n", err, sizeof err), 0);
    assert_int_equal(((struct server *)core_cfg_get(&cfg, "server"))->stanza, 1024);
    core_cfg_free(&cfg);
    assert_int_equal(load(&cfg, "[server]\nname = x\nstanza = 16M\n", err, sizeof err), 0);
    assert_int_equal(((struct server *)core_cfg_get(&cfg, "server"))->stanza, 16 * 1024 * 1024);
    core_cfg_free(&cfg);
    expect_error("[server]\nname = x\nstanza = 1023\n",
                 "t.conf:3: key 'stanza' is out of range: must be between 1K and 16M");
    expect_error("[server]\nname = x\nstanza = 16777217\n",
                 "t.conf:3: key 'stanza' is out of range: must be between 1K and 16M");
}

static void test_msec(void **state)
{
    static const struct {
        const char *text;
        uint64_t want;
    } ok[] = {
        {"0", 0},         {"250ms", 250}, {"30s", 30000},
        {"10", 10000},    {"5m", 300000}, {"1h", 3600000},
        {"2 H", 7200000}, {"30S", 30000}, {"18446744073709551615ms", UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        core_cfg_t cfg;
        char line[64];
        snprintf(line, sizeof line, "dur = %s", ok[i].text);
        struct limits *l = load_one(&cfg, "limits", line);
        assert_int_equal(l->dur, ok[i].want);
        core_cfg_free(&cfg);
    }
    static const char *const bad[] = {"soon", "5d", "1.5s", "-1s", "ms", "5 m s"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[64], want[256];
        snprintf(line, sizeof line, "dur = %s", bad[i]);
        snprintf(want, sizeof want,
                 "key 'dur' expects a duration like 250ms, 30s, 5m or 1h, got '%s'", bad[i]);
        expect_value_error("limits", line, want);
    }
    expect_value_error("limits", "dur = 18446744073709551615s",
                       "key 'dur' is out of range: a duration must fit in 64 bits of ms");
    expect_value_error("limits", "dur = 5124095576030432h",
                       "key 'dur' is out of range: a duration must fit in 64 bits of ms");

    /* [server] idle is 100ms..1h. */
    core_cfg_t cfg;
    char err[512];
    assert_int_equal(load(&cfg, "[server]\nname = x\nidle = 100ms\n", err, sizeof err), 0);
    assert_int_equal(((struct server *)core_cfg_get(&cfg, "server"))->idle, 100);
    core_cfg_free(&cfg);
    assert_int_equal(load(&cfg, "[server]\nname = x\nidle = 60m\n", err, sizeof err), 0);
    assert_int_equal(((struct server *)core_cfg_get(&cfg, "server"))->idle, 3600000);
    core_cfg_free(&cfg);
    expect_error("[server]\nname = x\nidle = 99ms\n",
                 "t.conf:3: key 'idle' is out of range: must be between 100ms and 1h");
    expect_error("[server]\nname = x\nidle = 3601s\n",
                 "t.conf:3: key 'idle' is out of range: must be between 100ms and 1h");
}

static void test_enum(void **state)
{
    for (int i = 0; levels[i] != NULL; i++) {
        core_cfg_t cfg;
        char text[128], err[512];
        snprintf(text, sizeof text, "[server]\nname = x\nlevel = %s\n", levels[i]);
        assert_int_equal(load(&cfg, text, err, sizeof err), 0);
        assert_int_equal(((struct server *)core_cfg_get(&cfg, "server"))->level, i);
        core_cfg_free(&cfg);
    }
    expect_error("[server]\nname = x\nlevel = loud\n",
                 "t.conf:3: key 'level' expects one of error, warn, info, debug; got 'loud'");
    expect_error("[server]\nname = x\nlevel = Debug\n",
                 "t.conf:3: key 'level' expects one of error, warn, info, debug; got 'Debug'");
}

static void test_list(void **state)
{
    core_cfg_t cfg;
    struct limits *l = load_one(&cfg, "limits", "tags =  a, b ,c\t,  d e  # comment");
    assert_int_equal(l->tags.count, 4);
    assert_string_equal(l->tags.items[0], "a");
    assert_string_equal(l->tags.items[1], "b");
    assert_string_equal(l->tags.items[2], "c");
    assert_string_equal(l->tags.items[3], "d e");
    core_cfg_free(&cfg);

    l = load_one(&cfg, "limits", "tags = one");
    assert_int_equal(l->tags.count, 1);
    assert_string_equal(l->tags.items[0], "one");
    core_cfg_free(&cfg);

    l = load_one(&cfg, "limits", "tags = \"\"");
    assert_int_equal(l->tags.count, 0);
    core_cfg_free(&cfg);

    l = load_one(&cfg, "limits", "tags = \"x#y, z\"");
    assert_int_equal(l->tags.count, 2);
    assert_string_equal(l->tags.items[0], "x#y");
    assert_string_equal(l->tags.items[1], "z");
    core_cfg_free(&cfg);

    const char *msg = "key 'tags' has an empty item in its list (items are separated by ',')";
    expect_value_error("limits", "tags = a,,b", msg);
    expect_value_error("limits", "tags = a,", msg);
    expect_value_error("limits", "tags = ,a", msg);
    expect_value_error("limits", "tags = a, ,b", msg);
    expect_value_error("limits", "tags = \",\"", msg);
}

/* ---- syntax: comments, quoting, whitespace ---- */

static void test_comments_and_quoting(void **state)
{
    core_cfg_t cfg;
    char err[512];
    const char *text = "# leading comment\n"
                       "\n"
                       "   [ server ]   # a comment after a header\n"
                       "\tname=  bare words here   # trailing comment\n"
                       "motd = \"a \\\"quoted\\\" # not a comment\\\\ \\n\\t.\"  # comment\n"
                       "  # indented comment\n"
                       "[listen \"with space\"]  \n"
                       "addr = \"\"\n"
                       "[listen \"q\\\"\"]#c\n"
                       "addr=\"x\"#c\n";
    assert_int_equal(load(&cfg, text, err, sizeof err), 0);
    struct server *s = core_cfg_get(&cfg, "server");
    assert_string_equal(s->name, "bare words here");
    assert_string_equal(s->motd, "a \"quoted\" # not a comment\\ \n\t.");
    size_t pos = 0;
    struct listen *l = core_cfg_next(&cfg, "listen", &pos);
    assert_non_null(l);
    assert_string_equal(l->label, "with space");
    assert_string_equal(l->addr, "");
    l = core_cfg_next(&cfg, "listen", &pos);
    assert_non_null(l);
    assert_string_equal(l->label, "q\"");
    assert_string_equal(l->addr, "x");
    assert_null(core_cfg_next(&cfg, "listen", &pos));
    core_cfg_free(&cfg);

    /* CRLF line ends, a byte order mark, no newline at the end. */
    const char *crlf = "\xEF\xBB\xBF[server]\r\nname = x\r\nmotd = \"y\"\r\nport = 7";
    assert_int_equal(load(&cfg, crlf, err, sizeof err), 0);
    s = core_cfg_get(&cfg, "server");
    assert_string_equal(s->name, "x");
    assert_string_equal(s->motd, "y");
    assert_int_equal(s->port, 7);
    core_cfg_free(&cfg);
    expect_error("[server]\r\nname = x\r\nbogus = 1\r\n",
                 "t.conf:3: unknown key 'bogus' in [server]");

    /* Empty file: only the required key is missing. */
    expect_error("", "t.conf: missing section [server] (it needs key 'name')");
}

/* ---- errors, each with its line ---- */

static void test_errors(void **state)
{
    static const struct {
        const char *text;
        const char *msg;
    } cases[] = {
        {"[server]\nname = a\n[nope]\n", "t.conf:3: unknown section [nope]"},
        {"[server]\nname = a\n\n\nbogus = 1\n", "t.conf:5: unknown key 'bogus' in [server]"},
        {"[server]\nname = a\n[limits]\nname = b\n", "t.conf:4: unknown key 'name' in [limits]"},
        {"[server]\nname = a\n# x\nname = b\n",
         "t.conf:4: duplicate key 'name' (first set on line 2)"},
        {"[server]\nname = a\n[limits]\n[server]\n",
         "t.conf:4: duplicate section [server] (first on line 1)"},
        {"[server]\nname=a\n[listen \"x\"]\naddr=1\n[listen \"y\"]\naddr=2\n[listen \"x\"]\n",
         "t.conf:7: duplicate section [listen \"x\"] (first on line 3)"},
        {"[server]\nname=a\n[listen]\naddr=1\n",
         "t.conf:3: section [listen] needs a label: [listen \"name\"]"},
        {"[server \"a\"]\nname=a\n", "t.conf:1: section [server] takes no label"},
        {"[server]\nname=a\n[listen \"\"]\n", "t.conf:3: section [listen] has an empty label"},
        {"# hi\nname = a\n[server]\n", "t.conf:2: key 'name' is outside any [section]"},
        {"[server]\nname = a\nstanza = big\n",
         "t.conf:3: key 'stanza' expects a size like 64K (suffixes K, M, G), got 'big'"},
        {"[server]\nname = a\nport = 70000\n",
         "t.conf:3: key 'port' is out of range: must be between 1 and 65535"},
        {"[server]\nname = a\nlevel = loud\n",
         "t.conf:3: key 'level' expects one of error, warn, info, debug; got 'loud'"},
        {"[server]\nname = a\nmotd = \"abc\n", "t.conf:3: unterminated quoted string"},
        {"[server]\nname = a\nmotd = \"abc\\\"\n", "t.conf:3: unterminated quoted string"},
        {"[server]\nname = a\nmotd = \"abc\\", "t.conf:3: unterminated quoted string"},
        {"[listen \"abc]\n", "t.conf:1: unterminated quoted string"},
        {"[server]\nname = a\nmotd = \"abc\" def\n",
         "t.conf:3: unexpected text after the quoted value of 'motd'"},
        {"[server]\nname = a\nmotd = \"a\\qb\"\n",
         "t.conf:3: unknown escape '\\q' in quoted string (use \\\" \\\\ \\n \\t)"},
        {"[server]\nport = 1\n[limits]\n", "t.conf:1: [server] is missing required key 'name'"},
        {"[limits]\n\n[server]\nport = 1\n", "t.conf:3: [server] is missing required key 'name'"},
        {"[server]\nname=a\n[listen \"x\"]\nport = 1\n[paths]\n",
         "t.conf:3: [listen \"x\"] is missing required key 'addr'"},
        {"[limits]\n", "t.conf: missing section [server] (it needs key 'name')"},
        {"[server]\nname=a\n[limits]\ncount = 13\n[paths]\n",
         "t.conf:3: [limits]: count must not be 13"},
        {"[server]\nname=a\n[limits]\ncount = 13\n", "t.conf:3: [limits]: count must not be 13"},
        {"[server]\nname=a\n[listen \"x\"]\naddr = a\nport = 0\n",
         "t.conf:3: [listen \"x\"]: port 0 is reserved"},
        {"[server]\nname =\n", "t.conf:2: key 'name' has no value (write \"\" for an empty one)"},
        {"[server]\nname = # c\n",
         "t.conf:2: key 'name' has no value (write \"\" for an empty one)"},
        {"[server]\nname a\n", "t.conf:2: expected '=' after 'name'"},
        {"[server]\n= a\n", "t.conf:2: expected 'key = value', a [section] or a # comment"},
        {"[server]\n\"name\" = a\n",
         "t.conf:2: expected 'key = value', a [section] or a # comment"},
        {"[server\nname = a\n", "t.conf:1: expected ']' to close the section header"},
        {"[server] x\nname = a\n", "t.conf:1: unexpected text after the section header"},
        {"[server]]\nname = a\n", "t.conf:1: unexpected text after the section header"},
        {"[]\n", "t.conf:1: expected a section name after '['"},
        {"[ \"x\" ]\n", "t.conf:1: expected a section name after '['"},
        {"[listen \"a\" \"b\"]\n", "t.conf:1: expected ']' to close the section header"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(cases[i].text, cases[i].msg);
}

static void test_nul_and_long_lines(void **state)
{
    core_cfg_t cfg;
    char err[512];
    const char text[] = "[server]\nname = a\0b\n";
    assert_int_equal(
        core_cfg_load_text(&cfg, "t.conf", text, sizeof text - 1, schema, NSCHEMA, err, sizeof err),
        -EINVAL);
    assert_string_equal(err, "t.conf:2: NUL byte in the file");

    /* A line of exactly 4096 bytes is fine; one more is not. */
    size_t n = 4096;
    char *big = malloc(64 + n + 2);
    assert_non_null(big);
    int off = snprintf(big, 64, "[server]\nname = a\nmotd = ");
    memset(big + off, 'x', n - 7);
    strcpy(big + off + n - 7, "\n");
    assert_int_equal(load(&cfg, big, err, sizeof err), 0);
    assert_int_equal(strlen(((struct server *)core_cfg_get(&cfg, "server"))->motd), n - 7);
    core_cfg_free(&cfg);
    memset(big + off, 'x', n - 6);
    strcpy(big + off + n - 6, "\n");
    assert_int_equal(load(&cfg, big, err, sizeof err), -EINVAL);
    assert_string_equal(err, "/etc/parley/t.conf:3: line too long (more than 4096 bytes)");
    free(big);

    /* The whole text is bounded too. */
    size_t huge = 1024 * 1024 + 1;
    char *h = malloc(huge);
    assert_non_null(h);
    memset(h, '\n', huge);
    assert_int_equal(core_cfg_load_text(&cfg, "t.conf", h, huge, schema, NSCHEMA, err, sizeof err),
                     -EFBIG);
    assert_string_equal(err, "t.conf: too large (more than 1048576 bytes)");
    assert_null(cfg.items);
    /* One byte less is allowed (and, being empty, misses [server]). */
    assert_int_equal(
        core_cfg_load_text(&cfg, "t.conf", h, huge - 1, schema, NSCHEMA, err, sizeof err), -EINVAL);
    assert_string_equal(err, "t.conf: missing section [server] (it needs key 'name')");
    free(h);

    /* err may be absent or tiny; the result code still tells. */
    assert_int_equal(load(&cfg, "[nope]\n", NULL, 0), -EINVAL);
    char tiny[8];
    assert_int_equal(load(&cfg, "[nope]\n", tiny, sizeof tiny), -EINVAL);
    assert_string_equal(tiny, "/etc/pa");
}

/* The check of an absent section runs on its defaults. */
struct only {
    int64_t n;
};

static int only_check(void *data, char *err, size_t errlen)
{
    snprintf(err, errlen, "n is %d", (int)((struct only *)data)->n);
    return -EINVAL;
}

static void test_check_on_absent_section(void **state)
{
    static const core_cfg_key_t keys[] = {
        {.name = "n", .type = CORE_CFG_INT, .offset = offsetof(struct only, n), .def = "3"},
    };
    static const core_cfg_section_t sec = {
        .name = "only",
        .size = sizeof(struct only),
        .keys = keys,
        .nkeys = 1,
        .check = only_check,
    };
    static const core_cfg_section_t *const one[] = {&sec};
    core_cfg_t cfg;
    char err[512];
    assert_int_equal(core_cfg_load_text(&cfg, "o.conf", "", 0, one, 1, err, sizeof err), -EINVAL);
    assert_string_equal(err, "o.conf: [only]: n is 3");
    const char *text = "\n[only]\nn = 4\n";
    assert_int_equal(
        core_cfg_load_text(&cfg, "o.conf", text, strlen(text), one, 1, err, sizeof err), -EINVAL);
    assert_string_equal(err, "o.conf:2: [only]: n is 4");
}

/* ---- labelled sections ---- */

static void test_labelled_order(void **state)
{
    core_cfg_t cfg;
    char err[512];
    const char *text = "[listen \"b\"]\n"
                       "addr = 1\n"
                       "[server]\n"
                       "name = x\n"
                       "[listen \"a\"]\n"
                       "addr = 2\n"
                       "port = 1\n"
                       "[limits]\n"
                       "[listen \"c\"]\n"
                       "addr = 3\n";
    assert_int_equal(load(&cfg, text, err, sizeof err), 0);
    static const char *const labels[] = {"b", "a", "c"};
    static const char *const addrs[] = {"1", "2", "3"};
    static const unsigned lines[] = {1, 5, 9};
    size_t pos = 0, n = 0;
    struct listen *l;
    while ((l = core_cfg_next(&cfg, "listen", &pos)) != NULL) {
        assert_true(n < 3);
        assert_string_equal(l->label, labels[n]);
        assert_string_equal(l->addr, addrs[n]);
        assert_int_equal(l->port, n == 1 ? 1 : 5222);
        assert_ptr_equal(cfg.items[pos - 1].data, l);
        assert_int_equal(cfg.items[pos - 1].line, lines[n]);
        n++;
    }
    assert_int_equal(n, 3);
    assert_null(core_cfg_next(&cfg, "listen", &pos)); /* stays at the end */
    assert_null(core_cfg_next(&cfg, "nope", &(size_t){0}));
    /* The same key may appear once in each occurrence. */
    assert_int_equal(cfg.count, 3 + 3);
    core_cfg_free(&cfg);
}

/* ---- paths and files ---- */

static void test_paths(void **state)
{
    core_cfg_t cfg;
    char err[512];
    const char *text = "[server]\nname = x\n[paths]\n"
                       "data = ./db/../store\n"
                       "abs = /var/lib/parley\n"
                       "plain = not/a/path\n"
                       "dot = .\n";
    assert_int_equal(core_cfg_load_text(&cfg, "/srv/x/p.conf", text, strlen(text), schema, NSCHEMA,
                                        err, sizeof err),
                     0);
    struct paths *p = core_cfg_get(&cfg, "paths");
    assert_string_equal(cfg.dir, "/srv/x");
    assert_string_equal(p->data, "/srv/x/db/../store");
    assert_string_equal(p->abs, "/var/lib/parley");
    assert_string_equal(p->plain, "not/a/path");
    assert_string_equal(p->dot, "/srv/x");
    core_cfg_free(&cfg);

    /* A file at the root, and an empty path stays empty (unset). */
    text = "[server]\nname = x\n[paths]\ndata = d\nabs = \"\"\n";
    assert_int_equal(
        core_cfg_load_text(&cfg, "/p.conf", text, strlen(text), schema, NSCHEMA, err, sizeof err),
        0);
    p = core_cfg_get(&cfg, "paths");
    assert_string_equal(cfg.dir, "/");
    assert_string_equal(p->data, "/d");
    assert_string_equal(p->abs, "");
    core_cfg_free(&cfg);

    /* A relative file name is anchored to the current folder at load time. */
    char cwd[PATH_MAX], want[PATH_MAX + 32];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(tmpdir), 0);
    char real[PATH_MAX];
    assert_non_null(getcwd(real, sizeof real));
    assert_int_equal(mkdir("sub", 0700), 0);
    write_file("sub/p.conf", text, strlen(text));
    assert_int_equal(core_cfg_load(&cfg, "./sub/p.conf", schema, NSCHEMA, err, sizeof err), 0);
    snprintf(want, sizeof want, "%s/sub", real);
    assert_string_equal(cfg.dir, want);
    assert_string_equal(cfg.path, "./sub/p.conf");
    snprintf(want, sizeof want, "%s/sub/d", real);
    assert_string_equal(((struct paths *)core_cfg_get(&cfg, "paths"))->data, want);
    core_cfg_free(&cfg);
    assert_int_equal(
        core_cfg_load_text(&cfg, "p.conf", text, strlen(text), schema, NSCHEMA, err, sizeof err),
        0);
    assert_string_equal(cfg.dir, real);
    core_cfg_free(&cfg);
    assert_int_equal(unlink("sub/p.conf"), 0);
    assert_int_equal(rmdir("sub"), 0);
    assert_int_equal(chdir(cwd), 0);
}

static void test_load_file(void **state)
{
    core_cfg_t cfg;
    char err[512], path[PATH_MAX + 32], want[PATH_MAX + 128];
    tmp_path(path, sizeof path, "absent.conf");
    assert_int_equal(core_cfg_load(&cfg, path, schema, NSCHEMA, err, sizeof err), -ENOENT);
    snprintf(want, sizeof want, "%s: cannot open: %s", path, strerror(ENOENT));
    assert_string_equal(err, want);
    assert_null(cfg.items);

    tmp_path(path, sizeof path, "ok.conf");
    const char *text = "[server]\nname = x\nbogus = 1\n";
    write_file(path, text, strlen(text));
    assert_int_equal(core_cfg_load(&cfg, path, schema, NSCHEMA, err, sizeof err), -EINVAL);
    snprintf(want, sizeof want, "%s:3: unknown key 'bogus' in [server]", path);
    assert_string_equal(err, want);

    text = "[server]\nname = x\n";
    write_file(path, text, strlen(text));
    assert_int_equal(core_cfg_load(&cfg, path, schema, NSCHEMA, err, sizeof err), 0);
    assert_string_equal(cfg.path, path);
    assert_string_equal(cfg.dir, tmpdir);
    assert_string_equal(((struct server *)core_cfg_get(&cfg, "server"))->name, "x");
    core_cfg_free(&cfg);
    assert_int_equal(unlink(path), 0);

    /* Bigger than the bound: refused before parsing. */
    tmp_path(path, sizeof path, "big.conf");
    size_t n = 1024 * 1024 + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, '#', n);
    write_file(path, big, n);
    free(big);
    assert_int_equal(core_cfg_load(&cfg, path, schema, NSCHEMA, err, sizeof err), -EFBIG);
    snprintf(want, sizeof want, "%s: too large (more than 1048576 bytes)", path);
    assert_string_equal(err, want);
    assert_int_equal(unlink(path), 0);

    /* A folder is not a config file. */
    assert_int_equal(core_cfg_load(&cfg, tmpdir, schema, NSCHEMA, err, sizeof err), -EISDIR);
}

static void test_read_secret(void **state)
{
    char path[PATH_MAX + 32];
    char *s = (char *)1;
    tmp_path(path, sizeof path, "secret");

    write_file(path, "s3cret\n\n", 8);
    assert_int_equal(core_cfg_read_secret(path, &s), 0);
    assert_string_equal(s, "s3cret");
    core_free(s);

    write_file(path, "  two words \t\r\n", 15);
    assert_int_equal(core_cfg_read_secret(path, &s), 0);
    assert_string_equal(s, "  two words");
    core_free(s);

    write_file(path, "no newline", 10);
    assert_int_equal(core_cfg_read_secret(path, &s), 0);
    assert_string_equal(s, "no newline");
    core_free(s);

    write_file(path, "", 0);
    assert_int_equal(core_cfg_read_secret(path, &s), -EINVAL);
    assert_null(s);
    write_file(path, "\n \n\t", 4);
    assert_int_equal(core_cfg_read_secret(path, &s), -EINVAL);
    assert_null(s);
    write_file(path, "a\0b", 3);
    assert_int_equal(core_cfg_read_secret(path, &s), -EINVAL);

    char buf[4097];
    memset(buf, 'k', sizeof buf);
    write_file(path, buf, 4096);
    assert_int_equal(core_cfg_read_secret(path, &s), 0);
    assert_int_equal(strlen(s), 4096);
    core_free(s);
    write_file(path, buf, 4097);
    assert_int_equal(core_cfg_read_secret(path, &s), -EFBIG);
    assert_null(s);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(core_cfg_read_secret(path, &s), -ENOENT);
    assert_null(s);
}

static void test_no_leaks_on_failure_midway(void **state)
{
    /* Everything built before the error (lists, labels, strings) is freed. */
    expect_error("[server]\nname = x\nhosts = a, b\nmotd = m\n[listen \"l\"]\naddr = z\n"
                 "[limits]\ntags = p, q\nflag = nope\n",
                 "t.conf:9: key 'flag' expects yes/no, true/false or on/off, got 'nope'");
}

int main(void)
{
    char tmpl[] = "/tmp/parley-test-config-XXXXXX";
    if (mkdtemp(tmpl) == NULL)
        return 1;
    snprintf(tmpdir, sizeof tmpdir, "%s", tmpl);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_overrides_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_int, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_msec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_comments_and_quoting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nul_and_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_on_absent_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_labelled_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_leaks_on_failure_midway, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(tmpl);
    return rc;
}
