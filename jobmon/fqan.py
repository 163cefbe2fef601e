"""
VOMS fully qualified attribute names (FQANs): C{/cms}, C{/cms/higgs},
C{/cms/Role=lcgadmin}, as C{voms-proxy-info --fqan} prints them.

Shared by the server (which reads them from proxies and matches them
against C{--admin-fqan} and job shares) and the job daemon (which checks
C{--share} before it registers).
"""

import re

from attrs import frozen

MAX_SHARES = 16
"""Most groups one job may be shared with."""

MAX_FQAN = 255
"""Longest FQAN accepted, in characters."""

_GROUP_PART = re.compile(r"[A-Za-z0-9._-]+")


@frozen
class FQAN:
    """
    A parsed FQAN.

    @ivar group: the group, C{/vo} or C{/vo/subgroup/...}.
    @ivar role: the role, or C{None} for none (C{Role=NULL} or absent).
    """

    group: str
    role: object = None

    @property
    def vo(self):
        """
        The VO: the first part of the group.
        """
        return self.group.split("/")[1]

    def __str__(self):
        return self.group if self.role is None else "{}/Role={}".format(self.group, self.role)

    def grants(self, wanted):
        """
        Whether holding this FQAN satisfies C{wanted}: a group without a
        role asks for membership of the group (any role), a group with a
        role for that role in that group.
        """
        return self.group == wanted.group and wanted.role in (None, self.role)


def parseFqan(text):
    """
    Parse an FQAN: C{/group[/subgroup...][/Role=r][/Capability=c]}.  A
    C{Role=NULL} is no role; a capability (deprecated in VOMS, always
    C{NULL} today) must be C{NULL} and is dropped.

    @rtype: L{FQAN}
    @raise ValueError: C{text} is not an FQAN, with a message that says why.
    """
    if not isinstance(text, str) or not text.startswith("/") or len(text) > MAX_FQAN:
        raise ValueError("an FQAN is /group[/subgroup...][/Role=role], not {!r}".format(
            text if not isinstance(text, str) else text[:MAX_FQAN]))
    parts = text[1:].split("/")
    groups, role, capability = [], None, None
    for part in parts:
        if part.startswith("Role="):
            if role is not None or capability is not None:
                raise ValueError("{!r}: one Role, after the groups".format(text))
            role = part[len("Role="):]
            if not _GROUP_PART.fullmatch(role):
                raise ValueError("{!r}: bad role".format(text))
        elif part.startswith("Capability="):
            if capability is not None:
                raise ValueError("{!r}: one Capability, at the end".format(text))
            capability = part[len("Capability="):]
            if capability != "NULL":
                raise ValueError("{!r}: capabilities are not supported".format(text))
        else:
            if role is not None or capability is not None or not _GROUP_PART.fullmatch(part):
                raise ValueError(
                    "{!r}: groups are letters, digits, '.', '_' and '-', before any "
                    "Role".format(text)
                )
            if part in (".", ".."):
                raise ValueError("{!r}: bad group name".format(text))
            groups.append(part)
    if not groups:
        raise ValueError("{!r}: an FQAN starts with its VO's group".format(text))
    return FQAN("/" + "/".join(groups), None if role == "NULL" else role)


def checkShares(shares):
    """
    Check a job's C{share} list (from its registration): at most
    L{MAX_SHARES} FQANs.

    @return: the parsed FQANs, as a tuple.
    @raise ValueError: it is not such a list.
    """
    if not isinstance(shares, (list, tuple)):
        raise ValueError("share must be a list of FQANs")
    if len(shares) > MAX_SHARES:
        raise ValueError("a job may be shared with at most {} groups".format(MAX_SHARES))
    return tuple(parseFqan(s) for s in shares)


def firstGrant(wanted, held):
    """
    The first of C{wanted} (L{FQAN}s) that one of C{held} grants, as
    C{(wanted, held)}, or C{None}.
    """
    for w in wanted:
        for h in held:
            if h.grants(w):
                return w, h
    return None


def tokenGroups(claim, most=64):
    """
    The groups of a bearer token's C{wlcg.groups} claim (a list of group
    names, C{/cms}, C{/cms/higgs}), as L{FQAN}s without roles.

    Entries that are not group names, or that name a role (tokens carry
    none), are ignored: they grant nothing.

    @param most: how many entries are read at most.
    """
    if not isinstance(claim, list):
        return ()
    groups = []
    for entry in claim[:most]:
        try:
            fqan = parseFqan(entry)
        except ValueError:
            continue
        if fqan.role is None and "Role=" not in entry and fqan not in groups:
            groups.append(fqan)
    return tuple(groups)
