/* SPDX-License-Identifier: MIT */
/* Helpers shared by the router and link tests: parse one stanza, build a config. */
#ifndef PARLEY_TEST_ROUTER_FIXTURE_H
#define PARLEY_TEST_ROUTER_FIXTURE_H

#include "core/config.h"
#include "router/router.h"
#include "xml/xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses one top-level element as if it came on a component stream. */
static inline xml_stanza_t *fixture_parse(const char *xml)
{
    static const char hdr[] = "<stream:stream xmlns='jabber:component:accept' "
                              "xmlns:stream='http://etherx.jabber.org/streams' to='x'>";
    xml_parser_t *p = xml_parser_new(NULL);
    xml_event_t ev;
    xml_stanza_t *st = NULL;
    xml_parser_feed(p, hdr, sizeof(hdr) - 1);
    xml_parser_feed(p, xml, strlen(xml));
    while (xml_parser_next(p, &ev) == 0) {
        if (ev.kind == XMLS_EV_ELEMENT && st == NULL)
            st = ev.stanza;
        else
            xml_stanza_unref(ev.stanza);
    }
    xml_parser_free(p);
    if (st == NULL) {
        fprintf(stderr, "fixture_parse: no element in %s\n", xml);
        abort();
    }
    return st;
}

static const core_cfg_section_t *const fixture_schema[] = {
    &router_cfg_section,
    &router_component_cfg_section,
};

static inline void fixture_config(core_cfg_t *cfg, const char *text)
{
    char err[256];
    if (core_cfg_load_text(cfg, "test.conf", text, strlen(text), fixture_schema, 2, err,
                           sizeof(err)) != 0) {
        fprintf(stderr, "fixture_config: %s\n", err);
        abort();
    }
}

#endif
