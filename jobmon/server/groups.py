"""
What VO groups and roles grant a caller: admin rights by C{--admin-fqan},
and reading a job its owner shared with a group (C{--share}).

A certificate caller holds the FQANs of her proxy's verified VOMS ACs (see
L{jobmon.server.voms}); a bearer token's caller holds the groups of its
C{wlcg.groups} claim, without roles.  Each answer says what granted it, for
the audit.
"""

from jobmon import __version__
from jobmon.errors import NOT_AUTHORIZED, JobMonError
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


def isAdmin(identity, config, now):
    """
    Whether the caller is one of the server's admins: by her DN
    (C{config.admins}) or by an FQAN of C{config.adminFqans}.

    @param config: the hub's L{jobmon.server.hub.HubConfig}.
    """
    return identity in config.admins or adminGrant(identity, config.adminFqans, now) is not None


def queryGrant(identity, record, config, now):
    """
    What lets the caller query a job, as C{(what, readOnly)}: C{("",
    False)} for its owner or an admin by DN, C{("admin by FQAN ...", False)}
    for an admin by FQAN, C{("FQAN ... for share ...", True)} for a member of
    a group it is shared with.

    @param record: the job's L{jobmon.server.registry.JobRecord}, or C{None}.
    @return: that, or L{None} if nothing does (or there is no such job).
    """
    if record is None:
        return None
    if record.owner == identity.dn or identity in config.admins:
        return "", False
    admin = adminGrant(identity, config.adminFqans, now)
    if admin is not None:
        return "admin by " + admin, False
    share = shareGrant(identity, record.info, now)
    if share is not None:
        return share, True
    return None


def readOnlyRefusal(jobId, op):
    """
    The error for a member of a group a job is shared with who asks to act
    on it: a share lets a group read; acting stays the owner's and the
    admins'.
    """
    return JobMonError(
        NOT_AUTHORIZED,
        "job {} is shared with you for reading only; only its owner and the server's "
        "admins may {}".format(jobId, "run commands" if op == "run" else "send signals"),
    )


def listable(registry, identity, everything, now):
    """
    The records C{listJobs} may show the caller: every job (C{everything},
    for an admin), or her own and those shared with a group she holds.
    Only a caller holding FQANs or token groups costs a look at other
    owners' jobs.

    @param registry: the L{jobmon.server.registry.IJobRegistry}.
    """
    if everything:
        return registry.jobs()
    own = registry.ofOwner(identity.dn)
    token = identity.token
    if not heldFqans(identity, now) and not getattr(token, "groups", ()):
        return own
    return own + [
        r for r in registry.jobs()
        if r.owner != identity.dn and shareGrant(identity, r.info, now) is not None
    ]


def describeCaller(identity, config, now):
    """
    What C{whoami} says of the caller, and which version the server runs.

    @param config: the hub's L{jobmon.server.hub.HubConfig}.
    """
    me = {
        "dn": identity.dn,
        "admin": isAdmin(identity, config, now),
        "proxy": identity.proxy,
        "fqans": [str(f) for f in heldFqans(identity, now)],
        "limited": identity.limited,
        "server_version": __version__,
    }
    if identity.issuer:
        me["issuer"] = identity.issuer
    if identity.token is not None:
        me["token"] = identity.token.describe()
    return me
