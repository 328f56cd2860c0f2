/* SPDX-License-Identifier: MIT */
/* parleyctl: account administration, safe while the server runs (the store allows it), and status.
 */
#include "auth/auth.h"
#include "core/config.h"
#include "ctl_status.h"
#include "jid/jid.h"
#include "schema.h"
#include "storage/storage.h"

#include <errno.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/parley/parley.conf"
#define SCRAM_ITERATIONS 4096
#define DEFAULT_TIMEOUT_MS 5000

static void usage(FILE *out)
{
    fprintf(out,
            "usage: parleyctl [--config FILE] [--timeout SECONDS] [--json] COMMAND\n\n"
            "  adduser JID   create an account (the password is read from the terminal,\n"
            "                or from the first line of standard input)\n"
            "  passwd JID    set a new password\n"
            "  deluser JID   remove the account and everything stored for it\n"
            "  users         list the accounts\n"
            "  status        the router's routes and each component's counts, from the running\n"
            "                server (needs a [component] with control = yes; --timeout, default\n"
            "                5 s; --json for JSON)\n");
}

/* Reads one line without echo from a terminal, or as is from a pipe. Never from argv. */
static int read_password(const char *prompt, char *buf, size_t cap)
{
    bool tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "%s", prompt);
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(buf, (int)cap, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (got == NULL)
        return -EINVAL;
    buf[strcspn(buf, "\r\n")] = '\0';
    return buf[0] != '\0' ? 0 : -EINVAL;
}

/* The prepared localpart of jid into user (the store holds one domain's users). */
static int localpart(const char *jid, char *user, size_t cap)
{
    jid_t j;
    if (jid_parse(NULL, jid, strlen(jid), &j) < 0 || !jid_has_node(&j) || jid_has_resource(&j) ||
        j.node_len >= cap) {
        if (j.full != NULL)
            jid_clear(&j);
        fprintf(stderr, "parleyctl: not an account JID (user@domain): %s\n", jid);
        return -EINVAL;
    }
    memcpy(user, j.full, j.node_len);
    user[j.node_len] = '\0';
    jid_clear(&j);
    return 0;
}

static int set_password(storage_db_t *db, const char *user, bool create)
{
    char pw[1024];
    char line[AUTH_CREDS_TEXT_MAX];
    size_t n;
    int err = read_password("Password: ", pw, sizeof(pw));
    if (err < 0) {
        fprintf(stderr, "parleyctl: no password given\n");
        return err;
    }
    err = auth_creds_text_from_password(pw, strlen(pw), SCRAM_ITERATIONS, line, &n);
    OPENSSL_cleanse(pw, sizeof(pw));
    if (err < 0) {
        fprintf(stderr, "parleyctl: the password is not acceptable (SASLprep, RFC 4013)\n");
        return err;
    }
    err = create ? storage_db_user_create(db, user, line) : storage_db_creds_set(db, user, line);
    OPENSSL_cleanse(line, sizeof(line));
    return err;
}

static int run(storage_db_t *db, const char *cmd, const char *jid)
{
    char user[JID_PART_MAX + 1];
    int err;
    if (strcmp(cmd, "users") == 0) {
        storage_list_t l = {0};
        err = storage_db_user_list(db, &l);
        for (size_t i = 0; err == 0 && i < l.count; i++)
            printf("%s\n", l.items[i].data);
        storage_list_clear(&l);
        return err;
    }
    if (jid == NULL || localpart(jid, user, sizeof(user)) < 0)
        return -EINVAL;
    if (strcmp(cmd, "adduser") == 0) {
        err = set_password(db, user, true);
        if (err == -EEXIST)
            fprintf(stderr, "parleyctl: %s already exists\n", jid);
        return err;
    }
    if (strcmp(cmd, "passwd") == 0) {
        if ((err = storage_db_user_exists(db, user)) < 0) {
            fprintf(stderr, "parleyctl: no such account: %s\n", jid);
            return err;
        }
        return set_password(db, user, false);
    }
    if (strcmp(cmd, "deluser") == 0) {
        err = storage_db_user_delete(db, user);
        if (err == -ENOENT)
            fprintf(stderr, "parleyctl: no such account: %s\n", jid);
        return err;
    }
    usage(stderr);
    return -EINVAL;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = DEFAULT_CONFIG;
    uint64_t timeout_ms = DEFAULT_TIMEOUT_MS;
    bool json = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:t:jh", longopts, NULL)) != -1) {
        if (opt == 'c') {
            config_path = optarg;
        } else if (opt == 't') {
            char *end;
            double secs = strtod(optarg, &end);
            if (*end != '\0' || !(secs > 0 && secs <= 3600)) {
                fprintf(stderr, "parleyctl: --timeout takes seconds, more than 0, up to 3600\n");
                return 2;
            }
            timeout_ms = (uint64_t)(secs * 1000);
            if (timeout_ms == 0)
                timeout_ms = 1;
        } else if (opt == 'j') {
            json = true;
        } else {
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind >= argc || argc - optind > 2) {
        usage(stderr);
        return 2;
    }
    core_cfg_t cfg;
    char msg[512];
    if (core_cfg_load(&cfg, config_path, parley_schema, parley_schema_len, msg, sizeof(msg)) < 0) {
        fprintf(stderr, "parleyctl: %s\n", msg);
        return 1;
    }
    if (strcmp(argv[optind], "status") == 0) {
        /* A question to the running server through its router: the store is not touched. */
        int rc = optind + 1 == argc ? ctl_status_run(&cfg, timeout_ms, json) : 2;
        if (rc == 2)
            usage(stderr);
        core_cfg_free(&cfg);
        return rc;
    }
    storage_config_t sc;
    storage_settings_apply(core_cfg_get(&cfg, "storage"), &sc);
    storage_db_t *db;
    int err = storage_db_open(&sc, &db);
    if (err < 0) {
        fprintf(stderr, "parleyctl: cannot open the store %s: %s\n", sc.path, strerror(-err));
        core_cfg_free(&cfg);
        return 1;
    }
    err = run(db, argv[optind], optind + 1 < argc ? argv[optind + 1] : NULL);
    if (err < 0 && err != -EINVAL && err != -EEXIST && err != -ENOENT)
        fprintf(stderr, "parleyctl: %s\n", strerror(-err));
    storage_db_close(db);
    core_cfg_free(&cfg);
    return err == 0 ? 0 : 1;
}
