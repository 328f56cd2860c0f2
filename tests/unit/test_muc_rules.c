/* SPDX-License-Identifier: MIT */
/*
 * Who may change whom in a room (XEP-0045 §5 and the use cases of §8-§10): role changes,
 * affiliation changes, reading the lists, inviting; each refusal with its error condition.
 */
#include "muc/internal.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

enum { OUTCAST = MUC_AFFIL_OUTCAST, NONE = MUC_AFFIL_NONE, MEMBER = MUC_AFFIL_MEMBER };
enum { ADMIN = MUC_AFFIL_ADMIN, OWNER = MUC_AFFIL_OWNER };
enum { R_NONE = MUC_ROLE_NONE, VISITOR = MUC_ROLE_VISITOR, PARTICIPANT = MUC_ROLE_PARTICIPANT };
enum { MODERATOR = MUC_ROLE_MODERATOR };

/* -1: allowed; else the condition of the refusal. */
static int role(int actor_affil, int actor_role, int target_affil, int target_role, int new_role,
                bool self)
{
    core_stanza_err_t why = CORE_STANZA_ERR_UNDEFINED_CONDITION;
    bool ok = muc_rules_role_change((muc_affil_t)actor_affil, (muc_role_t)actor_role,
                                    (muc_affil_t)target_affil, (muc_role_t)target_role,
                                    (muc_role_t)new_role, self, &why);
    return ok ? -1 : (int)why;
}

static int affil(int actor_affil, int old_affil, int new_affil, bool self)
{
    core_stanza_err_t why = CORE_STANZA_ERR_UNDEFINED_CONDITION;
    bool ok = muc_rules_affil_change((muc_affil_t)actor_affil, (muc_affil_t)old_affil,
                                     (muc_affil_t)new_affil, self, &why);
    return ok ? -1 : (int)why;
}

static void test_role_changes(void **state)
{
    (void)state;
    /* §8.2 kick, §8.3 voice, §8.4 revoke voice: a moderator over participants and visitors. */
    assert_int_equal(role(NONE, MODERATOR, NONE, PARTICIPANT, R_NONE, false), -1);
    assert_int_equal(role(NONE, MODERATOR, NONE, VISITOR, PARTICIPANT, false), -1);
    assert_int_equal(role(NONE, MODERATOR, NONE, PARTICIPANT, VISITOR, false), -1);
    assert_int_equal(role(MEMBER, MODERATOR, MEMBER, PARTICIPANT, R_NONE, false), -1);
    /* §8: only moderators. */
    assert_int_equal(role(NONE, PARTICIPANT, NONE, VISITOR, R_NONE, false),
                     CORE_STANZA_ERR_FORBIDDEN);
    assert_int_equal(role(MEMBER, VISITOR, NONE, VISITOR, PARTICIPANT, false),
                     CORE_STANZA_ERR_FORBIDDEN);
    /* §5.2.1: the moderator role is granted by admins and owners only. */
    assert_int_equal(role(NONE, MODERATOR, NONE, PARTICIPANT, MODERATOR, false),
                     CORE_STANZA_ERR_FORBIDDEN);
    assert_int_equal(role(ADMIN, MODERATOR, NONE, PARTICIPANT, MODERATOR, false), -1);
    assert_int_equal(role(OWNER, MODERATOR, MEMBER, VISITOR, MODERATOR, false), -1);
    /* §8.2: not over a higher affiliation. */
    assert_int_equal(role(NONE, MODERATOR, MEMBER, PARTICIPANT, R_NONE, false),
                     CORE_STANZA_ERR_NOT_ALLOWED);
    /* §8.4, §9.7: never an admin's or owner's voice or moderator status, even by an owner. */
    assert_int_equal(role(OWNER, MODERATOR, ADMIN, MODERATOR, PARTICIPANT, false),
                     CORE_STANZA_ERR_NOT_ALLOWED);
    assert_int_equal(role(OWNER, MODERATOR, OWNER, MODERATOR, VISITOR, false),
                     CORE_STANZA_ERR_NOT_ALLOWED);
    assert_int_equal(role(ADMIN, MODERATOR, OWNER, MODERATOR, R_NONE, false),
                     CORE_STANZA_ERR_NOT_ALLOWED);
    /* §5.1.3: a moderator loses the role to admins and owners only. */
    assert_int_equal(role(MEMBER, MODERATOR, NONE, MODERATOR, PARTICIPANT, false),
                     CORE_STANZA_ERR_NOT_ALLOWED);
    assert_int_equal(role(ADMIN, MODERATOR, MEMBER, MODERATOR, PARTICIPANT, false), -1);
    /* §8.2: kicking oneself is a conflict; no change at all is no error. */
    assert_int_equal(role(OWNER, MODERATOR, OWNER, MODERATOR, R_NONE, true),
                     CORE_STANZA_ERR_CONFLICT);
    assert_int_equal(role(NONE, MODERATOR, NONE, MODERATOR, R_NONE, true),
                     CORE_STANZA_ERR_CONFLICT);
    assert_int_equal(role(OWNER, MODERATOR, OWNER, MODERATOR, MODERATOR, true), -1);
}

static void test_affiliation_changes(void **state)
{
    (void)state;
    /* §9.1-§9.5: admins ban, add and remove members. */
    assert_int_equal(affil(ADMIN, NONE, OUTCAST, false), -1);
    assert_int_equal(affil(ADMIN, MEMBER, OUTCAST, false), -1);
    assert_int_equal(affil(ADMIN, OUTCAST, NONE, false), -1);
    assert_int_equal(affil(ADMIN, NONE, MEMBER, false), -1);
    assert_int_equal(affil(ADMIN, MEMBER, NONE, false), -1);
    /* §9: members and the unaffiliated may not. */
    assert_int_equal(affil(MEMBER, NONE, OUTCAST, false), CORE_STANZA_ERR_FORBIDDEN);
    assert_int_equal(affil(NONE, NONE, MEMBER, false), CORE_STANZA_ERR_FORBIDDEN);
    assert_int_equal(affil(OUTCAST, NONE, MEMBER, false), CORE_STANZA_ERR_FORBIDDEN);
    /* §9.1: an admin does not ban (or change) an equal or higher affiliation. */
    assert_int_equal(affil(ADMIN, OWNER, OUTCAST, false), CORE_STANZA_ERR_NOT_ALLOWED);
    assert_int_equal(affil(ADMIN, ADMIN, NONE, false), CORE_STANZA_ERR_NOT_ALLOWED);
    assert_int_equal(affil(ADMIN, OWNER, MEMBER, false), CORE_STANZA_ERR_NOT_ALLOWED);
    /* §10.3, §10.6: only owners make admins and owners. */
    assert_int_equal(affil(ADMIN, MEMBER, ADMIN, false), CORE_STANZA_ERR_FORBIDDEN);
    assert_int_equal(affil(ADMIN, NONE, OWNER, false), CORE_STANZA_ERR_FORBIDDEN);
    assert_int_equal(affil(OWNER, NONE, ADMIN, false), -1);
    assert_int_equal(affil(OWNER, MEMBER, OWNER, false), -1);
    /* §10.4, §10.7: owners change owners and admins, themselves too (the last-owner rule
     * is the caller's, which counts). */
    assert_int_equal(affil(OWNER, OWNER, ADMIN, false), -1);
    assert_int_equal(affil(OWNER, ADMIN, OUTCAST, false), -1);
    assert_int_equal(affil(OWNER, OWNER, MEMBER, true), -1);
    /* §9.1: banning oneself is a conflict, for admins and owners. */
    assert_int_equal(affil(OWNER, OWNER, OUTCAST, true), CORE_STANZA_ERR_CONFLICT);
    assert_int_equal(affil(ADMIN, ADMIN, OUTCAST, true), CORE_STANZA_ERR_CONFLICT);
}

static muc_room_config_t config(bool members_only, bool allow_invites, muc_whois_t whois,
                                unsigned get_member_list)
{
    muc_room_config_t c;
    memset(&c, 0, sizeof c);
    c.members_only = members_only;
    c.allow_invites = allow_invites;
    c.whois = whois;
    c.get_member_list = get_member_list;
    return c;
}

static int list_of(int want, int actor_affil, int actor_role, const muc_room_config_t *c)
{
    core_stanza_err_t why = CORE_STANZA_ERR_UNDEFINED_CONDITION;
    bool ok = muc_rules_affil_list((muc_affil_t)want, (muc_affil_t)actor_affil,
                                   (muc_role_t)actor_role, c, &why);
    return ok ? -1 : (int)why;
}

static void test_lists(void **state)
{
    (void)state;
    core_stanza_err_t why;
    /* §8.5, §9.8: role lists for moderators. */
    assert_true(muc_rules_role_list(MUC_AFFIL_NONE, MUC_ROLE_MODERATOR, &why));
    assert_true(muc_rules_role_list(MUC_AFFIL_ADMIN, MUC_ROLE_NONE, &why));
    assert_false(muc_rules_role_list(MUC_AFFIL_MEMBER, MUC_ROLE_PARTICIPANT, &why));
    assert_int_equal(why, CORE_STANZA_ERR_FORBIDDEN);
    unsigned mods = MUC_ROLE_BIT(MUC_ROLE_MODERATOR);
    muc_room_config_t semi = config(false, false, MUC_WHOIS_MODERATORS, mods);
    muc_room_config_t open = config(false, false, MUC_WHOIS_ANYONE, mods);
    /* §9.2: the ban list is the admins'. */
    assert_int_equal(list_of(OUTCAST, ADMIN, R_NONE, &semi), -1);
    assert_int_equal(list_of(OUTCAST, MEMBER, MODERATOR, &semi), CORE_STANZA_ERR_FORBIDDEN);
    /* §7.11, §9.5: the member list per getmemberlist; members of non-anonymous rooms. */
    assert_int_equal(list_of(MEMBER, ADMIN, R_NONE, &semi), -1);
    assert_int_equal(list_of(MEMBER, NONE, MODERATOR, &semi), -1);
    assert_int_equal(list_of(MEMBER, MEMBER, PARTICIPANT, &semi), CORE_STANZA_ERR_FORBIDDEN);
    assert_int_equal(list_of(MEMBER, MEMBER, R_NONE, &open), -1);
    assert_int_equal(list_of(MEMBER, NONE, R_NONE, &open), CORE_STANZA_ERR_FORBIDDEN);
    semi.get_member_list |= MUC_ROLE_BIT(MUC_ROLE_PARTICIPANT);
    assert_int_equal(list_of(MEMBER, NONE, PARTICIPANT, &semi), -1);
    /* §10.5, §10.8: owner and admin lists: owners; in non-anonymous rooms occupants too. */
    assert_int_equal(list_of(OWNER, OWNER, R_NONE, &semi), -1);
    assert_int_equal(list_of(OWNER, ADMIN, MODERATOR, &semi), CORE_STANZA_ERR_FORBIDDEN);
    assert_int_equal(list_of(ADMIN, ADMIN, MODERATOR, &semi), CORE_STANZA_ERR_FORBIDDEN);
    assert_int_equal(list_of(ADMIN, NONE, PARTICIPANT, &open), -1);
    assert_int_equal(list_of(OWNER, NONE, R_NONE, &open), CORE_STANZA_ERR_FORBIDDEN);
    /* There is no list of "none". */
    assert_int_equal(list_of(NONE, OWNER, MODERATOR, &semi), CORE_STANZA_ERR_BAD_REQUEST);
}

static void test_invite(void **state)
{
    (void)state;
    core_stanza_err_t why;
    muc_room_config_t open = config(false, false, MUC_WHOIS_MODERATORS, 0);
    muc_room_config_t closed = config(true, false, MUC_WHOIS_MODERATORS, 0);
    muc_room_config_t closed_inv = config(true, true, MUC_WHOIS_MODERATORS, 0);
    /* An open room: any occupant; not someone outside (§7.4 not-acceptable). */
    assert_true(muc_rules_invite(MUC_AFFIL_NONE, MUC_ROLE_VISITOR, &open, &why));
    assert_false(muc_rules_invite(MUC_AFFIL_NONE, MUC_ROLE_NONE, &open, &why));
    assert_int_equal(why, CORE_STANZA_ERR_NOT_ACCEPTABLE);
    /* §9.5: a members-only room: admins, or members when allowinvites says so. */
    assert_true(muc_rules_invite(MUC_AFFIL_ADMIN, MUC_ROLE_NONE, &closed, &why));
    assert_false(muc_rules_invite(MUC_AFFIL_MEMBER, MUC_ROLE_PARTICIPANT, &closed, &why));
    assert_int_equal(why, CORE_STANZA_ERR_FORBIDDEN);
    assert_false(muc_rules_invite(MUC_AFFIL_MEMBER, MUC_ROLE_MODERATOR, &closed, &why));
    assert_true(muc_rules_invite(MUC_AFFIL_MEMBER, MUC_ROLE_PARTICIPANT, &closed_inv, &why));
}

static void test_form_bool(void **state)
{
    (void)state;
    bool v = false;
    assert_int_equal(muc_form_bool("1", 1, &v), 0);
    assert_true(v);
    assert_int_equal(muc_form_bool("false", 5, &v), 0);
    assert_false(v);
    assert_int_equal(muc_form_bool("true", 4, &v), 0);
    assert_true(v);
    assert_int_equal(muc_form_bool("0", 1, &v), 0);
    assert_false(v);
    assert_int_equal(muc_form_bool("yes", 3, &v), -EINVAL);
    assert_int_equal(muc_form_bool("", 0, &v), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_changes), cmocka_unit_test(test_affiliation_changes),
        cmocka_unit_test(test_lists),        cmocka_unit_test(test_invite),
        cmocka_unit_test(test_form_bool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
