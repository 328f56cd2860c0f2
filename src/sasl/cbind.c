/* SPDX-License-Identifier: MIT */
/* Channel-binding data of a server-side TLS connection (RFC 5929, RFC 9266). */
#include "sasl/sasl.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* RFC 9266 §2: the exporter label and output length. */
static const char exporter_label[] = "EXPORTER-Channel-Binding";
#define EXPORTER_LEN 32

/*
 * RFC 5929 §3.1: the first Finished message of the latest handshake. In a full handshake the
 * client sends its Finished first; in a resumed one the server does.
 */
static void tls_unique(SSL *ssl, sasl_cb_data_t *d)
{
    size_t n = SSL_session_reused(ssl) ? SSL_get_finished(ssl, d->data, sizeof(d->data))
                                       : SSL_get_peer_finished(ssl, d->data, sizeof(d->data));
    d->len = n <= sizeof(d->data) ? n : 0;
}

static void tls_exporter(SSL *ssl, sasl_cb_data_t *d)
{
    /* No context value (RFC 9266 §2); the same as an empty one under TLS 1.3. */
    if (SSL_export_keying_material(ssl, d->data, EXPORTER_LEN, exporter_label,
                                   sizeof(exporter_label) - 1, NULL, 0, 0) == 1)
        d->len = EXPORTER_LEN;
}

/* RFC 5929 §4.1: our certificate hashed with its signature's hash, MD5 and SHA-1 as SHA-256. */
static void tls_server_end_point(SSL *ssl, sasl_cb_data_t *d)
{
    X509 *cert = SSL_get_certificate(ssl);
    int mdnid = NID_undef;
    unsigned int n = 0;

    if (cert == NULL || X509_get_signature_info(cert, &mdnid, NULL, NULL, NULL) != 1)
        return;
    if (mdnid == NID_md5 || mdnid == NID_sha1)
        mdnid = NID_sha256;
    const EVP_MD *md = mdnid != NID_undef ? EVP_get_digestbynid(mdnid) : NULL;
    if (md == NULL || EVP_MD_get_size(md) > (int)sizeof(d->data))
        return;
    if (X509_digest(cert, md, d->data, &n) == 1)
        d->len = n;
}

int sasl_cb_from_ssl(struct ssl_st *ssl, sasl_cb_data_t cb[SASL_CB_COUNT])
{
    memset(cb, 0, SASL_CB_COUNT * sizeof(*cb));
    if (ssl == NULL || !SSL_is_init_finished(ssl))
        return -EINVAL;
    bool tls13 = SSL_version(ssl) >= TLS1_3_VERSION;
    /* Without the extended master secret two TLS 1.2 connections can share these values. */
    bool ems = tls13 || SSL_get_extms_support(ssl) == 1;

    if (!tls13 && ems)
        tls_unique(ssl, &cb[SASL_CB_TLS_UNIQUE]);
    if (ems)
        tls_exporter(ssl, &cb[SASL_CB_TLS_EXPORTER]);
    tls_server_end_point(ssl, &cb[SASL_CB_TLS_SERVER_END_POINT]);
    return 0;
}
