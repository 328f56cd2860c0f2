/* SPDX-License-Identifier: MIT */
/* muc internals: the service, its rooms and their occupants, and the helpers every file uses. */
#ifndef PARLEY_MUC_INTERNAL_H
#define PARLEY_MUC_INTERNAL_H

#include "core/map.h"
#include "jid/jid.h"
#include "muc/muc.h"
#include "xml/xml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MUC_NS "http://jabber.org/protocol/muc"
#define MUC_NS_USER "http://jabber.org/protocol/muc#user"
#define MUC_NS_ADMIN "http://jabber.org/protocol/muc#admin"
#define MUC_NS_OWNER "http://jabber.org/protocol/muc#owner"
#define MUC_NS_UNIQUE "http://jabber.org/protocol/muc#unique"
#define MUC_NS_ROOMCONFIG "http://jabber.org/protocol/muc#roomconfig"
#define MUC_NS_ROOMINFO "http://jabber.org/protocol/muc#roominfo"
#define MUC_NS_STABLE_ID "http://jabber.org/protocol/muc#stable_id"
#define MUC_NS_SELF_PING "http://jabber.org/protocol/muc#self-ping-optimization"
#define MUC_NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define MUC_NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define MUC_NS_DATA "jabber:x:data"
#define MUC_NS_DELAY "urn:xmpp:delay"
#define MUC_NS_SID "urn:xmpp:sid:0"
#define MUC_NS_PING "urn:xmpp:ping"

/* Bounds on what one room keeps, whatever the configuration says. */
#define MUC_HISTORY_CAP 1000 /* messages of history a room can hold ([muc] history_max ≤ this) */
#define MUC_SUBJECT_MAX 4096 /* bytes of a subject */
#define MUC_NICK_FOLD_MAX (4 * JID_PART_MAX) /* bytes of a folded nick */

/* Roles (XEP-0045 §5.1), ordered by privilege. */
typedef enum muc_role {
    MUC_ROLE_NONE = 0,
    MUC_ROLE_VISITOR,
    MUC_ROLE_PARTICIPANT,
    MUC_ROLE_MODERATOR,
} muc_role_t;

/* A set of roles as bits (presencebroadcast, getmemberlist). */
#define MUC_ROLE_BIT(r) (1u << (unsigned)(r))
#define MUC_ROLES_ALL                                                                              \
    (MUC_ROLE_BIT(MUC_ROLE_VISITOR) | MUC_ROLE_BIT(MUC_ROLE_PARTICIPANT) |                         \
     MUC_ROLE_BIT(MUC_ROLE_MODERATOR))

/* Affiliations (XEP-0045 §5.2), ordered by privilege. */
typedef enum muc_affil {
    MUC_AFFIL_OUTCAST = 0,
    MUC_AFFIL_NONE,
    MUC_AFFIL_MEMBER,
    MUC_AFFIL_ADMIN,
    MUC_AFFIL_OWNER,
} muc_affil_t;

typedef enum muc_whois {
    MUC_WHOIS_MODERATORS = 0, /* semi-anonymous */
    MUC_WHOIS_ANYONE, /* non-anonymous */
} muc_whois_t;

typedef enum muc_allowpm {
    MUC_PM_ANYONE = 0,
    MUC_PM_PARTICIPANTS,
    MUC_PM_MODERATORS,
    MUC_PM_NONE,
} muc_allowpm_t;

const char *muc_role_name(muc_role_t r);
const char *muc_affil_name(muc_affil_t a);
/* Parses a role or affiliation name. Returns 0 or -EINVAL. */
int muc_role_parse(const char *s, muc_role_t *out);
int muc_affil_parse(const char *s, muc_affil_t *out);

/* ---- room configuration (muc#roomconfig, XEP-0045 §10.1.3, §15.5.3) ---- */

typedef struct muc_room_config {
    char *name; /* muc#roomconfig_roomname (owned; "" none) */
    char *desc; /* muc#roomconfig_roomdesc (owned; "" none) */
    char *lang; /* muc#roomconfig_lang (owned; "" none) */
    char *password; /* muc#roomconfig_roomsecret (owned; "" none) */
    bool persistent;
    bool public_room;
    bool members_only;
    bool moderated;
    bool password_protected;
    bool change_subject; /* occupants (participants) may change the subject */
    bool allow_invites; /* members may invite others */
    bool logging; /* muc#roomconfig_enablelogging (status 170) */
    bool archiving; /* muc#roomconfig_enablearchiving: the room's XEP-0313 archive (mam.c) */
    muc_whois_t whois;
    muc_allowpm_t allowpm;
    int64_t maxusers; /* 1 .. [muc] max_occupants */
    unsigned presence_broadcast; /* roles whose presence is broadcast (MUC_ROLE_BIT) */
    unsigned get_member_list; /* roles that may read the member list */
    int64_t history_length; /* muc#maxhistoryfetch: 0 .. [muc] history_max */
} muc_room_config_t;

/* The defaults of a new room, from [muc]. */
void muc_room_config_defaults(muc_room_config_t *c, const muc_config_t *mc);
void muc_room_config_copy(muc_room_config_t *dst, const muc_room_config_t *src);
void muc_room_config_clear(muc_room_config_t *c);

/* What a submitted form changes beyond the configuration itself (jid-multi fields). */
typedef struct muc_form_jids {
    char **owners; /* prepared bare JIDs (owned), or NULL when the field was absent */
    size_t nowners;
    bool has_owners;
    char **admins;
    size_t nadmins;
    bool has_admins;
} muc_form_jids_t;

void muc_form_jids_clear(muc_form_jids_t *j);

/*
 * Builds the muc#owner configuration form (XEP-0045 §10.1.3) of c into parent (an element
 * of st): an <x xmlns='jabber:x:data' type='form'/> with every field and its value.
 * owners/admins: current lists of bare JIDs for the jid-multi fields.
 */
void muc_roomconfig_form(xml_stanza_t *st, xml_node_t *parent, const muc_room_config_t *c,
                         const muc_config_t *mc, const char *const *owners, size_t nowners,
                         const char *const *admins, size_t nadmins);

/*
 * Applies a submitted form x (<x xmlns='jabber:x:data' type='submit'/>) to c, which starts
 * as the current configuration: fields absent keep their values. Checks every value against
 * the service limits in mc; jids (may be NULL) receives the owner/admin lists if given, each
 * JID prepared with cache. On failure c is unchanged and *why says what was wrong (a static
 * string). Returns 0, or -EINVAL (a value of the wrong type or out of range, an unknown
 * FORM_TYPE: bad-request... see the caller) or -EPERM (a combination the service refuses,
 * e.g. a password-protected room without a password: not-acceptable, XEP-0045 §10.1.3).
 */
int muc_roomconfig_apply(muc_room_config_t *c, const xml_node_t *x, const muc_config_t *mc,
                         jid_cache_t *cache, muc_form_jids_t *jids, const char **why);

/* ---- nicks (XEP-0045 §15.1: Resourceprep, never empty or only spaces) ---- */

/*
 * The key under which a prepared nick is unique in a room: nicks that differ only in case
 * or compatibility form (Kevin, KEVIN, Ｋｅｖｉｎ) are one nick, so nobody can pose as
 * another by case. Writes a NUL-terminated key to out (MUC_NICK_FOLD_MAX + 1 bytes).
 * Returns 0 or -EINVAL.
 */
int muc_nick_fold(const char *nick, size_t len, char *out, size_t *out_len);

/* True if a prepared nick is acceptable: not made only of space characters (§15.1). */
bool muc_nick_valid(const char *nick, size_t len);

/* ---- discussion history (XEP-0045 §7.2.15) ---- */

typedef struct muc_hist_entry {
    xml_stanza_t *st; /* the message as reflected, without 'to' (a reference) */
    int64_t stamp; /* when the room received it, Unix seconds */
    size_t chars; /* its serialised length, for maxchars */
} muc_hist_entry_t;

/* A ring of the last messages, oldest first. */
typedef struct muc_history {
    muc_hist_entry_t *v;
    size_t cap; /* allocated entries */
    size_t head; /* index of the oldest */
    size_t len;
} muc_history_t;

/* What a joining occupant asked for (<history/> attributes); -1: not given. */
typedef struct muc_hist_request {
    int64_t maxchars;
    int64_t maxstanzas;
    int64_t seconds;
    int64_t since; /* Unix seconds */
} muc_hist_request_t;

/* Appends st (a new reference is taken), dropping the oldest beyond keep (0: drop all). */
void muc_history_add(muc_history_t *h, xml_stanza_t *st, int64_t stamp, size_t keep);
/* Drops the oldest entries until at most keep are left. */
void muc_history_trim(muc_history_t *h, size_t keep);
void muc_history_clear(muc_history_t *h);
/* The i-th entry, oldest first (i < h->len). */
const muc_hist_entry_t *muc_history_at(const muc_history_t *h, size_t i);

/*
 * Which entries a join gets: the smallest set meeting every limit given and the room's
 * own (room_max stanzas), always the newest ones. Returns the index of the first entry to
 * send; entries from there to the end are sent. now: Unix seconds.
 */
size_t muc_history_select(const muc_history_t *h, const muc_hist_request_t *req, int64_t room_max,
                          int64_t now);

/* Parses a join's <history/> element (NULL: none given). Returns 0 or -EINVAL. */
int muc_history_request_parse(const xml_node_t *history, muc_hist_request_t *out);

/* XEP-0082 DateTime (UTC or with an offset, fractions allowed) to Unix seconds. 0 or -EINVAL. */
int muc_time_parse(const char *s, int64_t *out);
/* Unix seconds to "YYYY-MM-DDThh:mm:ssZ" (out: 21 bytes). */
void muc_time_format(int64_t t, char out[21]);

/* ---- rooms and occupants ---- */

typedef struct muc_room muc_room_t;

/* An affiliation someone holds in a room (other than none), keyed by bare JID. */
typedef struct muc_affiliation {
    char *jid; /* prepared bare JID (owned) */
    muc_affil_t affil;
    char *reason; /* owned, or NULL */
    char *nick; /* the nick reserved by registration (§7.10, §9.4) (owned), or NULL */
    char *nick_fold; /* its muc_nick_fold key (owned), or NULL */
} muc_affiliation_t;

/*
 * One client of an occupant. XEP-0045 §7.2.9: a user who enters with the nick its own bare JID
 * already holds gets a second in-room session under it ("multi-session nick"), not a conflict.
 */
typedef struct muc_session {
    jid_t jid; /* the real full JID (owned) */
    /* Its last presence as the room reflects it: the client's children (show, status, caps,
     * …) without the muc and muc#user elements, no addresses (a reference). */
    xml_stanza_t *presence;
    uint64_t seq; /* when it last sent presence (the occupant's counter): the newest is shown */
} muc_session_t;

/* Sessions one occupant may have: bounds the fan-out one nick costs. */
#define MUC_SESSIONS_MAX 16

/* One occupant: one nick, and the real full JIDs (sessions) of one bare JID under it. */
typedef struct muc_occupant {
    muc_room_t *room;
    char *nick; /* prepared (owned) */
    char *fold; /* the nick's key in room->by_nick (owned) */
    /* The real JID the room shows for the occupant (jid attributes, lists, the archive, an
     * iq forwarded to "any one" client, XEP-0410 §3): its oldest session's (a copy). */
    jid_t jid;
    muc_session_t *sessions; /* oldest first (owned); each full JID is a key of room->by_jid */
    size_t nsessions; /* 1 .. MUC_SESSIONS_MAX */
    uint64_t seq; /* counts presence updates, for muc_session_t.seq */
    muc_role_t role;
    uint64_t voice_asked_ms; /* when it last asked for voice (the loop's clock); 0: never */
    /* The presence others see: the newest of its sessions' (a reference to that one's). */
    xml_stanza_t *presence;
} muc_occupant_t;

/* A role a moderator gave someone without the affiliation that brings it (§5.1, rolememo.c). */
typedef struct muc_role_memo {
    char *jid; /* prepared bare JID (owned) */
    muc_role_t role; /* participant (voice granted) or visitor (voice revoked) */
    uint64_t seq; /* when it was given, for dropping the oldest */
} muc_role_memo_t;

/* Role memos one room keeps; beyond it the oldest is dropped. */
#define MUC_ROLE_MEMO_MAX 1000

/* The muc#register fields (§15.5.1) a request carries besides the nick, in the form's order. */
enum {
    MUC_REG_FIELD_FIRST,
    MUC_REG_FIELD_LAST,
    MUC_REG_FIELD_URL,
    MUC_REG_FIELD_EMAIL,
    MUC_REG_FIELD_FAQENTRY,
    MUC_REG_NFIELDS
};

/* A registration request waiting for an admin's approval (§9.9, regapprove.c). */
typedef struct muc_reg_request {
    char *jid; /* the requester's prepared bare JID (owned) */
    char *nick; /* the prepared nick asked for (owned) */
    char *fields[MUC_REG_NFIELDS]; /* what else the form said (owned each), or NULL */
} muc_reg_request_t;

/* The longest value of a request's field, in bytes: it is stored with the room. */
#define MUC_REG_FIELD_MAX 1024

struct muc_room {
    muc_t *muc;
    char *node; /* the prepared room id (owned) */
    char *jid; /* "node@service" (owned) */
    muc_room_config_t cfg;
    core_map_t affils; /* bare JID -> muc_affiliation_t (owned) */
    size_t naffils;
    core_map_t by_nick; /* folded nick -> muc_occupant_t (owned) */
    core_map_t by_jid; /* every session's real full JID -> muc_occupant_t (borrowed) */
    size_t noccupants; /* occupants (nicks), not sessions: maxusers counts these */
    core_map_t role_memos; /* bare JID -> muc_role_memo_t (owned), moderated rooms only */
    size_t nrole_memos;
    core_map_t reg_requests; /* bare JID -> muc_reg_request_t (owned): pending (§9.9) */
    size_t nreg_requests;
    uint64_t role_memo_seq;
    char *creator; /* bare JID of whoever created it, for [muc] max_rooms_per_user (owned) */
    /* Created and not configured yet: nobody else may enter (XEP-0045 §10.1.1). */
    bool locked;
    char *subject; /* owned; NULL: never set */
    char *subject_nick; /* who set it (owned), or NULL: the room itself */
    int64_t subject_stamp;
    muc_history_t history;
    /* Invitations sent and not declined yet, oldest first (invite.c): a decline is passed
     * only to someone who invited its sender, so the room relays nothing to strangers. */
    struct muc_invitation *invitations;
    size_t ninvitations;
    bool dirty; /* configuration or affiliations changed since last saved */
};

/* Forgets the room's pending invitations (invite.c). */
void muc_invitations_clear(muc_room_t *room);

/* ---- the service ---- */

struct muc {
    uv_loop_t *loop;
    const core_log_t *log;
    const muc_config_t *cfg;
    const link_opener_t *opener;
    storage_t *store; /* may be NULL */
    struct muc_mam *mam; /* the rooms' archives (mam.c; owned) */
    link_endpoint_t *link;
    jid_cache_t *jids;
    core_map_t rooms; /* node -> muc_room_t (owned) */
    size_t nrooms;
    char **local_domains; /* prepared (owned): [muc] local_domains, or the default */
    size_t nlocal;
    char **admins; /* prepared bare JIDs (owned) */
    size_t nadmins;
    uint64_t seq; /* for ids when the random source fails */
    uv_timer_t closer; /* closes the link after muc_stop's presences are handed over */
    bool stopping;
};

/* ---- status.c ---- */

/* Answers a status query to the service (st borrowed): the counts, or <forbidden/>. */
void muc_status_answer(muc_t *muc, const xml_stanza_t *st);

/* ---- helpers (muc.c) ---- */

/*
 * Hands st to the router. The one place where a stanza leaves: fan-out builds each copy with
 * muc_stanza_readdress. Returns 0 or a negative error (logged at debug).
 */
int muc_send(muc_t *muc, xml_stanza_t *st);

/*
 * A stanza for one recipient of a fan-out: src's content, shared, with its own from and to
 * (either NULL: src's). A new reference; src is frozen from then on (xml_stanza_readdress).
 */
xml_stanza_t *muc_stanza_readdress(xml_stanza_t *src, const char *from, const char *to);

/* A copy of src with its own from and to, for one recipient (src stays writable). */
xml_stanza_t *muc_stanza_forward(const xml_stanza_t *src, const char *from, const char *to);

/*
 * Sends the error reply to st (RFC 6120 §8.3): type (NULL: the condition's own, RFC 6120
 * §8.3.3), and by= the room's JID when room_jid is not NULL (as XEP-0045's examples show).
 * An error is never answered.
 */
void muc_reply_error(muc_t *muc, const xml_stanza_t *st, core_stanza_err_t cond, const char *type,
                     const char *room_jid);

/* A new id for a stanza the service makes (stanza-ids, forwarded iqs). out: 33 bytes. */
void muc_id_new(muc_t *muc, char out[33]);

/* Unix seconds now. */
int64_t muc_now(void);

/* True if the bare JID is a service admin ([muc] admins). */
bool muc_is_admin(const muc_t *muc, const char *bare, size_t len);

/* ---- rooms (room.c) ---- */

muc_room_t *muc_room_find(muc_t *muc, const char *node, size_t len);
/* A new room, locked, not yet in any list but muc->rooms. Takes nothing. */
muc_room_t *muc_room_create(muc_t *muc, const char *node, size_t len, const char *creator);
/* Removes the room from the service and frees it (its occupants must be gone). */
void muc_room_destroy(muc_room_t *room);
/* A temporary room with no occupant left goes (XEP-0045 §7.14 note); true if it went. */
bool muc_room_gc(muc_room_t *room);
/* Rooms that creator (a bare JID) created and that still exist. */
size_t muc_room_count_by(const muc_t *muc, const char *creator);

/* The affiliation of a bare JID (NONE when it has none), and its record (may be NULL). */
muc_affil_t muc_room_affil(const muc_room_t *room, const char *bare, size_t len);
/* Sets (or with MUC_AFFIL_NONE removes) a bare JID's affiliation; reason may be NULL. */
void muc_room_affil_set(muc_room_t *room, const char *bare, muc_affil_t a, const char *reason);
/* Calls fn for each affiliation record (the map must not change meanwhile). */
void muc_room_affil_each(const muc_room_t *room, void (*fn)(void *ud, muc_affiliation_t *a),
                         void *ud);
/* Bare JIDs with affiliation a, in a new array of borrowed strings (free the array). */
const char **muc_room_affil_list(const muc_room_t *room, muc_affil_t a, size_t *n);

/* The role an affiliation gets on entering (XEP-0045 §5.1.2). */
muc_role_t muc_room_default_role(const muc_room_t *room, muc_affil_t a);

/* ---- roles kept across visits (rolememo.c; XEP-0045 §5.1 "SHOULD do so for moderated
 * rooms") ---- */

/*
 * The role a bare JID gets on entering: its affiliation's default, or in a moderated room the
 * voice a moderator last gave or took from it (muc_room_role_note).
 */
muc_role_t muc_room_role_on_entry(const muc_room_t *room, const char *bare, size_t len,
                                  muc_affil_t affil);
/*
 * A moderator made an occupant of bare JID (with affiliation affil) a participant or a
 * visitor. In a moderated room a role its affiliation would not give it is kept for its next
 * visit (the oldest of MUC_ROLE_MEMO_MAX dropped); one that it would give ends the memo.
 * Other roles, and rooms that are not moderated, keep nothing. Marks the room dirty if it
 * changed.
 */
void muc_room_role_note(muc_room_t *room, const char *bare, size_t len, muc_affil_t affil,
                        muc_role_t role);
/* Stores a memo as read back from the store (role visitor or participant). 0 or -EINVAL. */
int muc_room_role_put(muc_room_t *room, const char *bare, muc_role_t role);
/* Forgets a bare JID's memo (its affiliation changed). */
void muc_room_role_forget(muc_room_t *room, const char *bare, size_t len);
/* Forgets every memo (the room is no longer moderated, or goes). */
void muc_room_roles_clear(muc_room_t *room);
/* The memos oldest first, in a new array of borrowed pointers (free the array). */
const muc_role_memo_t **muc_room_role_list(const muc_room_t *room, size_t *n);

/* ---- occupants (occupant.c) ---- */

muc_occupant_t *muc_occupant_by_nick(const muc_room_t *room, const char *nick, size_t len);
/* The occupant one of whose sessions has this real full JID. */
muc_occupant_t *muc_occupant_by_jid(const muc_room_t *room, const char *full);
/* The index of o's session with this real full JID, or -1. */
int muc_occupant_session(const muc_occupant_t *o, const char *full);
/*
 * Sends src to every session of o (multi-session nicks, XEP-0045 §7.2.9: "MUST route
 * in-room messages to all of the user's resources"), each copy readdressed to that session
 * (muc_stanza_readdress: src is shared and frozen from then on; its from is kept). Every
 * stanza for an occupant leaves through here, except what is for one session only.
 */
void muc_occupant_send(const muc_occupant_t *o, xml_stanza_t *src);
/* Frees an occupant that is in no map any more (room.c frees the rooms' last ones). */
void muc_occupant_free(muc_occupant_t *o);
/* The occupant's affiliation (by its bare JID). */
muc_affil_t muc_occupant_affil(const muc_occupant_t *o);
/* The occupant JID "room@service/nick" in a new string (core_free it). */
char *muc_occupant_jid(const muc_occupant_t *o);

/* Presence to an occupant JID (join, a session's join, change, nick change, leave). st
 * borrowed. */
void muc_occupant_presence(muc_t *muc, xml_stanza_t *st, const jid_t *from, const jid_t *to);

/* A presence or message error from an occupant's real JID: a client that is gone leaves. */
void muc_occupant_ghost(muc_t *muc, const xml_stanza_t *st, const jid_t *from, const jid_t *to);

/*
 * Takes the occupant, every session of it, out of the room: tells it (self-presence 110 plus
 * codes, to each session) and the others (codes) with unavailable presence, frees it, and
 * lets a temporary room go. codes:
 * status codes, ncodes of them; reason (may be NULL) goes in <item><reason/>. Returns true
 * if the room was destroyed with it.
 */
bool muc_occupant_remove(muc_occupant_t *o, const int *codes, size_t ncodes, const char *reason);

/* The same with every detail of the unavailable presence given (actor, role, affiliation). */
struct muc_pres_opts;
bool muc_occupant_remove_with(muc_occupant_t *o, const struct muc_pres_opts *opts);

/* ---- presence broadcast (presence.c) ---- */

/* What a presence from an occupant carries beyond the occupant's own state. */
typedef struct muc_pres_opts {
    bool unavailable;
    const int *codes; /* status codes for everyone */
    size_t ncodes;
    const int *self_codes; /* status codes only for the occupant itself (110 is implied) */
    size_t nself_codes;
    const char *new_nick; /* <item nick=…/> (303) */
    const char *reason; /* <item><reason/> */
    const char *actor; /* <item><actor nick=…/>: who kicked, banned, changed it (§8.2, §9.1) */
    const char *self_id; /* the id of the occupant's own stanza, reflected to it */
    /* The session whose stanza this answers (a real full JID): only its copy gets self_id
     * and self_codes. NULL: every session's does. */
    const char *origin;
    bool origin_only; /* only the origin session gets its own presence (muc_presence_self) */
    xml_stanza_t *presence; /* the payload to show instead of the occupant's (NULL: its own) */
    muc_affil_t *affil; /* overrides the occupant's affiliation (NULL: its own) */
    muc_role_t *role; /* overrides its role (NULL: its own) */
} muc_pres_opts_t;

/*
 * Sends o's presence to every session of every occupant the room's presencebroadcast lets
 * see it, and always to o itself (muc_presence_self); the jid attribute only to those
 * allowed to see it (XEP-0045 §7.2.3, §7.2.4).
 */
void muc_presence_broadcast(muc_occupant_t *o, const muc_pres_opts_t *opts);

/* Sends o's own presence (110) to its sessions: each with its own real JID, as opts says. */
void muc_presence_self(muc_occupant_t *o, const muc_pres_opts_t *opts);

/* Sends o's presence (as viewer sees it) to one session 'to' of viewer (the roster on join). */
void muc_presence_send_to(muc_occupant_t *o, const muc_occupant_t *viewer, const char *to);

/* True if occupant viewer may see the real JID of others (whois, XEP-0045 §7.2.3-4). */
bool muc_presence_sees_jids(const muc_occupant_t *viewer);

/* ---- messages (message.c) ---- */

/* A message to the room or an occupant JID. */
void muc_message_input(muc_t *muc, xml_stanza_t *st, const jid_t *from, const jid_t *to);
/* The room's subject message to one joining session 'to' (a real full JID; §7.2.16). */
void muc_message_subject_send(muc_room_t *room, const char *to);
/* The history a joining session 'to' gets (XEP-0045 §7.2.15). */
void muc_message_history_send(muc_room_t *room, const char *to, const muc_hist_request_t *req);
/* A message from the room itself (no nick) to every occupant: status codes, e.g. 104. */
void muc_message_room_status(muc_room_t *room, const int *codes, size_t ncodes);

/* ---- iq (iq.c, disco.c, roomconfig.c) ---- */

/* An iq to the service, a room or an occupant JID. */
void muc_iq_input(muc_t *muc, xml_stanza_t *st, const jid_t *from, const jid_t *to);
/* disco#info / #items of the service (room NULL) or a room. */
void muc_disco_info(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from);
void muc_disco_items(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from);
/* muc#owner get/set on a room (XEP-0045 §10). */
void muc_owner_iq(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from);
/* muc#admin get/set on a room (XEP-0045 §8, §9: roles and affiliations). admin.c */
void muc_admin_iq(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from);
/* §10.9: an owner destroys the room (destroy: the <destroy/> element). destroy.c */
void muc_owner_destroy(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const xml_node_t *destroy);

/* ---- who may change whom (rules.c; XEP-0045 §5, §8, §9, §10) ---- */

/*
 * The rules are pure: each says whether an actor may do something and, if not, which error
 * condition the request gets (*why): forbidden when the actor lacks the privilege itself,
 * not-allowed when it may not do it to this target (one of equal or higher affiliation, an
 * admin's or owner's voice), conflict for what may not be done to oneself, bad-request for
 * what is not a change at all. actor_role is the highest role the actor's bare JID holds in
 * the room (NONE when it is not in), counted as moderator for admins and owners.
 */
bool muc_rules_role_change(muc_affil_t actor_affil, muc_role_t actor_role, muc_affil_t target_affil,
                           muc_role_t target_role, muc_role_t new_role, bool self,
                           core_stanza_err_t *why);
bool muc_rules_affil_change(muc_affil_t actor_affil, muc_affil_t old_affil, muc_affil_t new_affil,
                            bool self, core_stanza_err_t *why);
/* Reading the list of occupants with a role (§8.5, §9.8). */
bool muc_rules_role_list(muc_affil_t actor_affil, muc_role_t actor_role, core_stanza_err_t *why);
/* Reading the list of an affiliation (§9.2, §9.5 + §7.11 getmemberlist, §10.5, §10.8). */
bool muc_rules_affil_list(muc_affil_t want, muc_affil_t actor_affil, muc_role_t actor_role,
                          const muc_room_config_t *cfg, core_stanza_err_t *why);
/* Sending a mediated invitation (§7.8.2, §9.5; muc#roomconfig_allowinvites). */
bool muc_rules_invite(muc_affil_t actor_affil, muc_role_t actor_role, const muc_room_config_t *cfg,
                      core_stanza_err_t *why);

/* ---- moderation (admin.c): roles and affiliations, §8, §9, §10.3-§10.8 ---- */

/* Who sends a request: its affiliation, its highest role, and its occupant (may be NULL). */
typedef struct muc_actor {
    muc_affil_t affil;
    muc_role_t role; /* as the rules want it: moderator for admins and owners */
    muc_occupant_t *occ; /* the occupant of the sender's full JID, else one of its bare JID */
} muc_actor_t;

void muc_admin_actor(const muc_room_t *room, const jid_t *from, muc_actor_t *out);

/*
 * Sets the affiliation of a bare JID and tells the room as §9 and §10 say: occupants with
 * that bare JID are banned (301) or, in a members-only room, removed (321), or their new
 * affiliation (and the role it brings) is broadcast. reason and actor (a nick) may be NULL.
 * inviter (a bare JID, may be NULL): a new member of a members-only room who is not in it is
 * invited in its name (§9.5). Returns true if the room went with its last occupant.
 */
bool muc_admin_affil_apply(muc_room_t *room, const char *bare, muc_affil_t a, const char *reason,
                           const char *actor, const char *inviter);
/* Sets an occupant's role (NONE: kicked, 307) and tells the room. True if the room went. */
bool muc_admin_role_apply(muc_occupant_t *o, muc_role_t r, const char *reason, const char *actor);

/* ---- messages to the room itself (invite.c, voice.c) ---- */

/*
 * A message to the room that is not groupchat: mediated invitations and declines (§7.8.2),
 * voice requests and their approvals (§7.13, §8.6), answers to registration requests (§9.9);
 * anything else is bad-request (§17.1).
 * o: the sender's occupant, or NULL.
 */
void muc_invite_input(muc_room_t *room, muc_occupant_t *o, xml_stanza_t *st, const jid_t *from);
/*
 * Sends a mediated invitation from the room to 'to' in the name of 'from' (a JID), with the
 * room's password if it has one (§7.8.2). reason and id (the invitation's) may be NULL.
 */
void muc_invite_send(muc_room_t *room, const char *to, const char *from, const char *reason,
                     const char *id);
/* A muc#request form in st (§7.13, §8.6): handled (true), or not one (false). */
bool muc_voice_input(muc_room_t *room, muc_occupant_t *o, xml_stanza_t *st, const jid_t *from);

/* ---- registration and reserved nicks (register.c; §7.10, §7.12) ---- */

/* jabber:iq:register get/set on a room. */
void muc_register_iq(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from);
/* disco#info with node x-roomuser-item: the sender's reserved nick (§7.12). */
void muc_register_nick_query(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from);
/*
 * Reserves nick (prepared; NULL or "": none) for the bare JID, which must hold an
 * affiliation. Returns 0, -ENOENT (no affiliation) or -EINVAL (not a valid nick).
 */
int muc_register_nick_set(muc_room_t *room, const char *bare, const char *nick);
/* True if the nick (its fold key) is reserved by a bare JID other than bare[0..len) (§7.12). */
bool muc_register_nick_taken(const muc_room_t *room, const char *fold, const char *bare,
                             size_t len);
/*
 * Prepares a nick given in a form or an attribute (Resourceprep, §15.1) into out (owned,
 * core_free it) and its fold key. Returns 0 or -EINVAL.
 */
int muc_register_nick_prep(muc_t *muc, const char *nick, size_t len, char **out,
                           char fold[MUC_NICK_FOLD_MAX + 1]);

/*
 * Registers a bare JID with the room (§7.10): it becomes a member if it was less, and nick
 * (prepared, not reserved by another: the caller checked) is reserved for it; those in the
 * room see the change. Direct registration and an approved request both come here.
 */
void muc_register_apply(muc_room_t *room, const char *bare, const char *nick);
/*
 * True if the nick (its fold key) may be reserved for bare[0..len): reserved by nobody else
 * and not another user's in the room now (§7.10 conflict).
 */
bool muc_register_nick_free(const muc_room_t *room, const char *fold, const char *bare, size_t len);

/* ---- registration requests approved by admins (regapprove.c; §9.9) ---- */

/*
 * Keeps bare's request for nick (prepared) pending, with the other muc#register fields of the
 * submitted form x, and sends the approval form to the room's admins and owners. A second
 * request of the same bare JID replaces the first (admins are asked again only if the nick
 * changed). Returns 0, -ENOSPC ([muc] registration_pending are pending) or -EINVAL (a field too
 * long).
 */
int muc_regapprove_request(muc_room_t *room, const char *bare, const char *nick,
                           const xml_node_t *x);
/*
 * A muc#register form in a message to the room (an admin's answer, §9.9): handled (true), or
 * not one (false). Submissions by non-admins, and for no pending request, change nothing.
 */
bool muc_regapprove_input(muc_room_t *room, xml_stanza_t *st, const jid_t *from);
/*
 * The approval message for req (§9.9's form: FORM_TYPE, the request's fields, muc#jid and
 * muc#register_allow false), from the room, without 'to': a new stanza.
 */
xml_stanza_t *muc_regapprove_form(const muc_room_t *room, const muc_reg_request_t *req);
/* Forgets bare's pending request, if any (its affiliation changed). */
void muc_regapprove_forget(muc_room_t *room, const char *bare, size_t len);
/* Forgets every pending request (the room goes). */
void muc_regapprove_clear(muc_room_t *room);
/* Adds the pending requests to a room document, sorted by JID (roomstore.c). */
void muc_regapprove_encode(const muc_room_t *room, xml_stanza_t *doc, const char *ns);
/* Reads back one <request/> element of a room document. Returns 0 or -EINVAL. */
int muc_regapprove_decode(muc_room_t *room, const xml_node_t *n);

/* ---- data forms (form.c; XEP-0004) ---- */

/* The first <value/> of the field var in x (borrowed, *len), or NULL when absent. */
const char *muc_form_value(const xml_node_t *x, const char *var, size_t *len);
/* True if x is a form of this FORM_TYPE. */
bool muc_form_is(const xml_node_t *x, const char *form_type);
/* A XEP-0004 boolean ("1"/"true"/"0"/"false"). Returns 0 or -EINVAL. */
int muc_form_bool(const char *v, size_t len, bool *out);
/* Adds <field var type label><value/></field> to x (type, label, value may be NULL). */
xml_node_t *muc_form_field(xml_stanza_t *st, xml_node_t *x, const char *var, const char *type,
                           const char *label, const char *value);
/*
 * A new <message/> from the room (a fresh id, no 'to') holding a data form of type "form"
 * with its title and instructions, for a moderator's or admin's approval (XEP-0045 §8.6,
 * §9.9); *x is the form, for its fields.
 */
xml_stanza_t *muc_form_message(const muc_room_t *room, const char *title, const char *instructions,
                               xml_node_t **x);

/* ---- persistence (persist.c, roomstore.c) ---- */

/* Writes the room to the store if it changed (deleted when it is no longer persistent). */
void muc_room_save(muc_room_t *room);
/* Removes a persistent room from the store (it is being destroyed). */
void muc_room_forget(muc_room_t *room);
/*
 * Reads every persistent room of the service, then opens the link (muc_link_open). Returns 0
 * (the link opens when they are read) or a negative error (no store: open it yourself).
 */
int muc_rooms_load(muc_t *muc);
/* Opens the link to the router (muc.c). */
void muc_link_open(muc_t *muc);

/*
 * A room's configuration, affiliations and subject as one element (for the store), in a new
 * stanza; its bytes (xml_stanza_bytes) are what is stored.
 */
xml_stanza_t *muc_roomstore_encode(const muc_room_t *room);

/*
 * Reads back what muc_roomstore_encode wrote into a room created with muc_room_create
 * (configuration, affiliations, subject), unlocked. Values are checked against mc as a form
 * would be. Returns 0 or -EINVAL (the room is then left as it was, but maybe partly filled).
 */
int muc_roomstore_decode(muc_room_t *room, const xml_node_t *el);

#endif
