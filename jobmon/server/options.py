"""
The command-line options of C{twistd jobmon-server} (and the keys of its
configuration file): parsed and checked here, used by
L{jobmon.server.service}, which reads the files they name when the server
starts.
"""

import re

from twisted.internet.abstract import isIPAddress
from twisted.python import usage

from jobmon.config import FileOptions, applyConfigFile
from jobmon.fqan import parseFqan
from jobmon.options import DEFAULT_CA_DIR, defaultCADir, portNumber, positive
from jobmon.server.identity import parseAdmin
from jobmon.server.tls import CRL_MODES

_RFC4514_PART = re.compile(r"^\s*[A-Za-z][A-Za-z0-9.-]*\s*=")


def checkAdmin(value):
    """
    Check an C{--admin} value: a DN in slash form (C{/C=DE/O=Example/CN=Site
    Admin}), optionally followed by C{|} and its issuing CA's DN, or a
    bearer token's identity (C{https://issuer#subject}), as the server
    compares them with callers' identities (see
    L{jobmon.server.identity.parseAdmin}).

    @return: the value.
    @raise usage.UsageError: anything else, with the slash form of an RFC
        4514 DN (C{CN=Site Admin,O=Example,C=DE}) as a hint.
    """
    text = value.strip()
    if text != value:
        raise usage.UsageError(
            "--admin {!r}: a DN does not begin or end with white space".format(value)
        )
    try:
        parseAdmin(value)
        return value
    except ValueError as e:
        why = "; {}".format(e) if value.startswith("/") else ""
    hint = ""
    parts = [p for p in re.split(r"(?<!\\),", value)]
    if len(parts) > 1 and all(_RFC4514_PART.match(p) for p in parts):
        slash = "".join("/" + p.strip().replace("\\,", ",") for p in reversed(parts))
        hint = "; in slash form this is {!r}".format(slash)
    raise usage.UsageError(
        "--admin {!r} is not a DN{}: give it in slash form as jobmon-query whoami "
        "prints it, like '/DC=org/DC=example/CN=Site Admin'{}".format(value, why, hint)
    )


class Options(FileOptions):
    """
    Command-line options of C{twistd jobmon-server}.
    """

    program = "jobmon-server"

    synopsis = "[options]"
    longdesc = (
        "Run the JobMon central server: XML-RPC over HTTPS for users and job "
        "daemons, and the TCP wake port for job daemons."
    )

    optParameters = [
        ["config", None, None, "TOML configuration file: keys are the long option names; "
         "options given on the command line override it (docs/CONFIG.md)."],
        ["interface", None, "0.0.0.0", "Address to listen on."],
        ["https-port", None, 8443, "XML-RPC over HTTPS port (0: any free port).", portNumber],
        ["wake-port", None, 8444, "TCP wake channel port (0: any free port).", portNumber],
        ["hostcert", None, "/etc/grid-security/hostcert.pem", "Host certificate (PEM)."],
        ["hostkey", None, "/etc/grid-security/hostkey.pem", "Host key (PEM)."],
        [
            "ca-dir",
            None,
            None,
            "Trusted CAs, OpenSSL hashed directory "
            "[default: $X509_CERT_DIR, then " + DEFAULT_CA_DIR + "].",
        ],
        [
            "crl-check",
            None,
            "auto",
            "Revocation: auto (check certificates whose CA has a CRL file <hash>.r0 "
            "in the CA directory), require (refuse those whose CA has none), off.",
        ],
        [
            "reload-interval",
            None,
            60.0,
            "Seconds between checks of the CA directory, host credential and token "
            "issuers for changes (SIGHUP reloads at once).",
            positive(float),
        ],
        [
            "query-timeout",
            None,
            30.0,
            "Seconds a query waits for its job.",
            positive(float),
        ],
        [
            "keepalive",
            None,
            20,
            "Wake channel keep-alive interval, seconds; a silent peer is dropped "
            "after three intervals.",
            positive(int),
        ],
        [
            "connect-grace",
            None,
            30.0,
            "Seconds a registered job has to connect its wake channel.",
            positive(float),
        ],
        [
            "max-body",
            None,
            16 * 1024 * 1024,
            "Largest XML-RPC request body accepted, bytes (results included).",
            positive(int),
        ],
        [
            "max-pending-per-job",
            None,
            64,
            "Most requests queued or running for one job.",
            positive(int),
        ],
        [
            "max-pending-per-user",
            None,
            256,
            "Most queries one user may have pending at once.",
            positive(int),
        ],
        [
            "query-rate",
            None,
            50.0,
            "Queries per second one user may make (sustained).",
            positive(float),
        ],
        [
            "query-burst",
            None,
            200,
            "Queries one user may make in a burst above the rate.",
            positive(int),
        ],
        [
            "user-rate",
            None,
            10.0,
            "Calls per second one identity may make to whoami, listJobs, history and "
            "auditLog together (sustained); past the rate, fault 429.",
            positive(float),
        ],
        [
            "user-burst",
            None,
            100,
            "Such calls one identity may make in a burst above the rate.",
            positive(int),
        ],
        [
            "daemon-rate",
            None,
            500.0,
            "Calls per second the job daemons of one identity may make together "
            "(registerJob, getJobToDo, outputJobResult, waitForWork, unregisterJob).",
            positive(float),
        ],
        [
            "daemon-burst",
            None,
            5000,
            "Such calls the daemons of one identity may make in a burst above the rate.",
            positive(int),
        ],
        [
            "auth-failure-rate",
            None,
            1.0,
            "Requests per second from one address that fail to authenticate before "
            "further failures from there are answered 429.",
            positive(float),
        ],
        [
            "auth-failure-burst",
            None,
            30,
            "Such failures from one address in a burst above the rate.",
            positive(int),
        ],
        [
            "max-jobs-per-owner",
            None,
            5000,
            "Most jobs one identity may have registered at once.",
            positive(int),
        ],
        [
            "registration-rate",
            None,
            50.0,
            "New job registrations per second one identity may make (renewals by a "
            "registered daemon are not new).",
            positive(float),
        ],
        [
            "registration-burst",
            None,
            2000,
            "New registrations one identity may make in a burst above the rate.",
            positive(int),
        ],
        [
            "max-per-peer",
            None,
            1024,
            "Most connections to each port from one address.",
            positive(int),
        ],
        [
            "request-deadline",
            None,
            30.0,
            "Seconds a client has to send a whole request once it starts.",
            positive(float),
        ],
        [
            "handshake-deadline",
            None,
            10.0,
            "Seconds a client has to finish its TLS handshake on the HTTPS port.",
            positive(float),
        ],
        [
            "send-deadline",
            None,
            60.0,
            "Seconds a client has to read an answer once the server's send buffer "
            "for it is full; its next pipelined request waits until it has.",
            positive(float),
        ],
        [
            "connection-rate",
            None,
            50.0,
            "New HTTPS connections per second from one address (sustained); a "
            "malformed request costs 10.",
            positive(float),
        ],
        [
            "connection-burst",
            None,
            200,
            "New HTTPS connections one address may open in a burst above the rate.",
            positive(int),
        ],
        [
            "idle-timeout",
            None,
            120.0,
            "Seconds an idle HTTPS connection is kept.",
            positive(float),
        ],
        [
            "udp-broadcast",
            None,
            None,
            "Offer UDP wakes, sent to this ADDR:PORT (the workers' broadcast address, "
            "e.g. 10.1.255.255:8445; 127.255.255.255:PORT on one host).",
        ],
        [
            "reregister-interval",
            None,
            60.0,
            "Seconds between re-registrations of UDP daemons.",
            positive(float),
        ],
        [
            "missed-registrations",
            None,
            3,
            "UDP and poll jobs not heard from for this many intervals are dropped.",
            positive(int),
        ],
        [
            "cleanup-interval",
            None,
            10.0,
            "Seconds between cleanup cycles.",
            positive(float),
        ],
        [
            "max-poll",
            None,
            60.0,
            "Longest wait of a poll-mode daemon's waitForWork call, seconds.",
            positive(float),
        ],
        [
            "reserve-ids",
            None,
            86400.0,
            "Seconds a job id stays reserved for its owner after its job went, also "
            "across a restart (read from --history): nobody else may register it.",
            positive(float),
        ],
        [
            "log-dir",
            None,
            None,
            "Also write structured JSON-lines logs here: jobmon-registration, -query, "
            "-wake, -cleanup and -server.jsonl (or one jobmon.jsonl with --log-single).",
        ],
        [
            "metrics-port",
            None,
            None,
            "Serve Prometheus metrics (/metrics) and a health check (/healthz) over "
            "plain HTTP on this port [default: off].",
            portNumber,
        ],
        [
            "metrics-interface",
            None,
            "127.0.0.1",
            "Address of the metrics port.",
        ],
        [
            "redis",
            None,
            None,
            "Share jobs with the other servers of a cluster through this Redis: "
            "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS "
            "(?ca=FILE for its CA). Give a password in the configuration file (key "
            "redis), not on the command line. Without it the server keeps everything "
            "in its own memory. See docs/SCALING.md.",
        ],
        [
            "redis-prefix",
            None,
            "jobmon:",
            "Prefix of the cluster's keys and channels in Redis: clusters sharing one "
            "Redis database each need their own.",
        ],
        [
            "history",
            None,
            "jobmon-history.sqlite3",
            "SQLite database of job and query history (jobmon-query history).",
        ],
        [
            "history-days",
            None,
            30.0,
            "Days the history keeps a job (from when it ended) and a query; older "
            "rows are pruned.",
            positive(float),
        ],
        [
            "history-max-rows",
            None,
            10000,
            "Most jobs and most queries the history keeps for one identity (the newest).",
            positive(int),
        ],
        [
            "audit-log",
            None,
            "jobmon-audit.jsonl",
            "The audit trail: JSON lines, one per query, refusal and registration.",
        ],
        [
            "audit-rotate",
            None,
            10 * 1024 * 1024,
            "Rotate the audit log past this many bytes.",
            positive(int),
        ],
        [
            "audit-keep",
            None,
            10,
            "Rotated audit logs kept.",
            positive(int),
        ],
        [
            "audit-refusal-budget",
            None,
            64 * 1024,
            "Bytes of refusal records each caller (identity, or address if unidentified) "
            "may add to the audit log per hour; past that its refusals are counted and "
            "summarised, so that no caller can rotate the others' records away.",
            positive(int),
        ],
        [
            "token-issuers",
            None,
            None,
            "Also accept WLCG/SciTokens bearer tokens from the issuers this TOML file "
            "names, with their key files and scopes (docs/SECURITY.md); a client "
            "certificate becomes optional [default: certificates only].",
        ],
        [
            "vomsdir",
            None,
            None,
            "Read VOMS groups and roles from callers' proxies, trusting the VOMS servers "
            "that <vomsdir>/<vo>/<host>.lsc files list (their DN, then their CA's) "
            "[default: no VOMS attributes].",
        ],
        [
            "port-file",
            None,
            None,
            "Once listening, write the bound ports here as JSON "
            '({"https": N, "wake": N}); useful with port 0.',
        ],
    ]

    optFlags = [
        [
            "log-single",
            None,
            "With --log-dir, one file with a category field instead of one per category.",
        ],
        [
            "wake-tls13",
            None,
            "Use TLS 1.3 on the wake port too (default: TLS 1.2 there, which "
            "costs about 10 KB less per idle wake channel).",
        ],
        [
            "wake-tls-only",
            None,
            "Take only TLS on the wake port: do not offer daemons the sealed wake "
            "channel (keyed by their registration; about 35 KiB less per idle wake "
            "channel than TLS 1.2).",
        ],
    ]

    configPaths = (
        "hostcert", "hostkey", "ca-dir", "audit-log", "port-file", "log-dir", "history",
        "token-issuers", "vomsdir",
    )
    """Options a configuration file gives relative to its directory."""

    writtenPaths = ("audit-log", "history", "log-dir", "port-file")
    """Options naming what the server writes: they must lie where it may
    write (C{tests/test_deployment.py} checks the example configuration
    against the systemd unit)."""

    def __init__(self):
        super().__init__()
        self["admin"] = []
        self["admin-fqan"] = []

    def opt_admin(self, dn):
        """
        A DN that may see and query every job (repeatable), in slash form as
        jobmon-query whoami prints it: /DC=org/DC=example/CN=Site Admin;
        add |ISSUER-DN to accept it only from that CA.
        """
        self["admin"].append(checkAdmin(dn))

    def opt_admin_fqan(self, fqan):
        """
        A VOMS FQAN whose holders may see and query every job (repeatable;
        needs --vomsdir), as jobmon-query whoami prints it: /cms/Role=lcgadmin;
        a group without a role (/cms) is any member of it.
        """
        try:
            self["admin-fqan"].append(str(parseFqan(fqan)))
        except ValueError as e:
            raise usage.UsageError("--admin-fqan: {}".format(e))

    def postOptions(self):
        """
        Fill in the configuration file's values and check what the coercers
        cannot: nothing is opened or read but the configuration file, and
        the files named are read when the service starts
        (L{jobmon.server.service.makeService}).
        """
        applyConfigFile(self)
        if self["udp-broadcast"] is not None:
            address, _, port = self["udp-broadcast"].rpartition(":")
            try:
                port = int(port)
                if not 0 < port < 65536 or not isIPAddress(address):
                    raise ValueError()
            except ValueError:
                raise usage.UsageError(
                    "--udp-broadcast must be ADDR:PORT with an IPv4 address, not {!r}".format(
                        self["udp-broadcast"]
                    )
                )
            self["udp-broadcast"] = (address, port)
        if self["redis"] is not None:
            from jobmon.server.cluster.redisurl import parseRedisURL

            try:
                self["redis"] = parseRedisURL(self["redis"])
            except ValueError as e:
                raise usage.UsageError("--redis: {}".format(e))
        if self["ca-dir"] is None:
            self["ca-dir"] = defaultCADir()
        if self["crl-check"] not in CRL_MODES:
            raise usage.UsageError(
                "--crl-check must be one of {}".format(", ".join(CRL_MODES))
            )

