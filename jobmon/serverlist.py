"""
Lists of servers, as daemons, C{jobmon-run} and C{jobmon-query} take them:
C{--server} given again adds one, and C{$JOBMON_SERVER} (or one C{--server})
may hold several, separated by commas.
"""

import argparse


def splitServers(values):
    """
    The server URLs named by C{values}: each a URL or a comma-separated
    list of them (spaces around the commas tolerated).

    @param values: a string or a list of strings.
    @return: a list of non-empty, stripped URLs, in order, without
        repeats.
    """
    if isinstance(values, str):
        values = [values]
    urls = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in urls:
                urls.append(part)
    return urls


class AddServer(argparse.Action):
    """
    C{--server} given again adds to the list: the value is kept as a
    comma-separated list, as C{$JOBMON_SERVER} holds it.
    """

    def __call__(self, parser, namespace, value, option_string=None):
        given = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, ",".join(filter(None, (given, value))))
