"""
What VO groups and roles grant a caller: admin rights by C{--admin-fqan},
and reading a job its owner shared with a group (C{--share}).

A certificate caller holds the FQANs of her proxy's verified VOMS ACs (see
L{jobmon.server.voms}); a bearer token's caller holds the groups of its
C{wlcg.groups} claim, without roles.  Each answer says what granted it, for
the audit.
"""

from jobmon.fqan import checkShares, firstGrant
from jobmon.server.voms import heldFqans


def adminGrant(identity, adminFqans, now):
    """
    Whether the caller is an admin by one of C{adminFqans}.

    @param adminFqans: the L{jobmon.fqan.FQAN}s of C{--admin-fqan}.
    @param now: the time (POSIX seconds): expired ACs grant nothing.
    @return: what granted it (C{"FQAN /cms/Role=lcgadmin"}), or C{None}.
    """
    if not adminFqans:
        return None
    grant = firstGrant(sorted(adminFqans, key=str), heldFqans(identity, now))
    return None if grant is None else "FQAN {}".format(grant[1])


def sharesOf(info):
    """
    The FQANs a job's registration C{info} shares it with (checked at
    registration; anything malformed shares nothing).
    """
    try:
        return checkShares(info.get("share", ()))
    except ValueError:
        return ()


def shareGrant(identity, info, now):
    """
    Whether a job whose registration is C{info} is shared with the caller.

    @return: what granted it (C{"FQAN /cms/Role=lcgadmin for share /cms"}
        or C{"token group /cms for share /cms"}), or C{None}.
    """
    shares = sharesOf(info)
    if not shares:
        return None
    grant = firstGrant(shares, heldFqans(identity, now))
    if grant is not None:
        return "FQAN {} for share {}".format(grant[1], grant[0])
    token = identity.token
    if token is not None:
        grant = firstGrant(shares, getattr(token, "groups", ()))
        if grant is not None:
            return "token group {} for share {}".format(grant[1], grant[0])
    return None
