/* SPDX-License-Identifier: MIT */
/* Who may change whose role or affiliation, read which list, invite whom (XEP-0045 §5). */
#include "muc/internal.h"

static bool deny(core_stanza_err_t *why, core_stanza_err_t e)
{
    *why = e;
    return false;
}

bool muc_rules_role_change(muc_affil_t actor_affil, muc_role_t actor_role, muc_affil_t target_affil,
                           muc_role_t target_role, muc_role_t new_role, bool self,
                           core_stanza_err_t *why)
{
    /* §8: role changes are for moderators only. */
    if (actor_role != MUC_ROLE_MODERATOR)
        return deny(why, CORE_STANZA_ERR_FORBIDDEN);
    /* §5.2.1: granting the moderator role is an admin's or owner's privilege. */
    if (new_role == MUC_ROLE_MODERATOR && actor_affil < MUC_AFFIL_ADMIN)
        return deny(why, CORE_STANZA_ERR_FORBIDDEN);
    if (new_role == target_role)
        return true; /* nothing changes */
    /* §8.2: "MAY deny ... a conflict error" to a moderator kicking itself. */
    if (self && new_role == MUC_ROLE_NONE)
        return deny(why, CORE_STANZA_ERR_CONFLICT);
    /* §8.4, §9.7: nobody takes an admin's or owner's voice or moderator status. */
    if (target_affil >= MUC_AFFIL_ADMIN)
        return deny(why, CORE_STANZA_ERR_NOT_ALLOWED);
    /* §8.2: nobody is kicked (or silenced) by a moderator of lower affiliation. */
    if (target_affil > actor_affil)
        return deny(why, CORE_STANZA_ERR_NOT_ALLOWED);
    /* §5.1.3: a moderator loses that role only to an admin or owner. */
    if (target_role == MUC_ROLE_MODERATOR && actor_affil < MUC_AFFIL_ADMIN)
        return deny(why, CORE_STANZA_ERR_NOT_ALLOWED);
    return true;
}

bool muc_rules_affil_change(muc_affil_t actor_affil, muc_affil_t old_affil, muc_affil_t new_affil,
                            bool self, core_stanza_err_t *why)
{
    /* §9: affiliations are for admins and owners only. */
    if (actor_affil < MUC_AFFIL_ADMIN)
        return deny(why, CORE_STANZA_ERR_FORBIDDEN);
    /* §9.1: "If an admin or owner attempts to ban himself ... conflict". */
    if (self && new_affil == MUC_AFFIL_OUTCAST)
        return deny(why, CORE_STANZA_ERR_CONFLICT);
    if (actor_affil == MUC_AFFIL_ADMIN) {
        /* §9.1 (an admin banning an owner), §5.2.2: admins change only those below them. */
        if (old_affil >= MUC_AFFIL_ADMIN)
            return deny(why, CORE_STANZA_ERR_NOT_ALLOWED);
        /* §10.3, §10.6: only owners make admins and owners. */
        if (new_affil >= MUC_AFFIL_ADMIN)
            return deny(why, CORE_STANZA_ERR_FORBIDDEN);
    }
    /* Owners may change anyone, other owners included (§10.4); the last owner stays (§10.4:
     * counted by the caller, which sees the whole request). */
    return true;
}

bool muc_rules_role_list(muc_affil_t actor_affil, muc_role_t actor_role, core_stanza_err_t *why)
{
    /* §8.5 (voice list), §9.8 (moderator list): moderators. */
    if (actor_role != MUC_ROLE_MODERATOR && actor_affil < MUC_AFFIL_ADMIN)
        return deny(why, CORE_STANZA_ERR_FORBIDDEN);
    return true;
}

bool muc_rules_affil_list(muc_affil_t want, muc_affil_t actor_affil, muc_role_t actor_role,
                          const muc_room_config_t *cfg, core_stanza_err_t *why)
{
    bool open_jids = cfg->whois == MUC_WHOIS_ANYONE;
    switch (want) {
    case MUC_AFFIL_OUTCAST: /* §9.2 */
        if (actor_affil >= MUC_AFFIL_ADMIN)
            return true;
        break;
    case MUC_AFFIL_MEMBER: /* §9.5; §7.11 per muc#roomconfig_getmemberlist */
        if (actor_affil >= MUC_AFFIL_ADMIN)
            return true;
        if (actor_role != MUC_ROLE_NONE && (cfg->get_member_list & MUC_ROLE_BIT(actor_role)))
            return true;
        /* §9.5 note: in a non-anonymous room any member, even one not in the room. */
        if (open_jids && actor_affil == MUC_AFFIL_MEMBER)
            return true;
        break;
    case MUC_AFFIL_ADMIN: /* §10.8 */
    case MUC_AFFIL_OWNER: /* §10.5 */
        if (actor_affil == MUC_AFFIL_OWNER)
            return true;
        /* "forbidden ... in semi-anonymous rooms. In non-anonymous rooms, MAY process" */
        if (open_jids && (actor_role != MUC_ROLE_NONE || actor_affil >= MUC_AFFIL_MEMBER))
            return true;
        break;
    default:
        return deny(why, CORE_STANZA_ERR_BAD_REQUEST); /* "none" is no list */
    }
    return deny(why, CORE_STANZA_ERR_FORBIDDEN);
}

bool muc_rules_invite(muc_affil_t actor_affil, muc_role_t actor_role, const muc_room_config_t *cfg,
                      core_stanza_err_t *why)
{
    if (actor_affil >= MUC_AFFIL_ADMIN)
        return true;
    /* §7.8.2: an invitation comes from an occupant (§7.4: others are not-acceptable). */
    if (actor_role == MUC_ROLE_NONE)
        return deny(why, CORE_STANZA_ERR_NOT_ACCEPTABLE);
    /* §9.5: in a members-only room inviting is editing the member list: admins, unless
     * allowinvites opens it to occupants. An open room is open: anyone in it may invite
     * (§5.1.1), as anyone may send a direct invitation (XEP-0249) anyway. */
    if (!cfg->members_only || cfg->allow_invites)
        return true;
    return deny(why, CORE_STANZA_ERR_FORBIDDEN);
}
