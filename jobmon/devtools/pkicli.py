"""
The C{jobmon-pki} command line (L{main}): C{init}, C{proxy},
C{token-issuer} and C{token}.  It is installed as
C{jobmon.devtools.pki:main}.
"""

import argparse
import getpass
import os
import sys

from jobmon.certificates import dnOf, proxyInfoOf
from jobmon.devtools.authority import DEFAULT_HOST_NAMES, DEFAULT_USERS, initPKI
from jobmon.devtools.certs import EncryptedKeyError, PKIError
from jobmon.devtools.keys import writeFile
from jobmon.devtools.proxies import makeProxy
from jobmon.options import versionAction


def _commaList(text):
    """
    Split a comma-separated option value, dropping blanks.
    """
    return [item.strip() for item in text.split(",") if item.strip()]


def _positive(kind):
    """
    An argparse type: C{kind} (int or float) greater than zero.
    """

    def convert(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError("must be greater than 0: %r" % (text,))
        return value

    convert.__name__ = kind.__name__
    return convert


def _nonNegative(text):
    """
    An argparse type: an int, zero or more.
    """
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more: %r" % (text,))
    return value


def _parser():
    """
    Build the C{jobmon-pki} argument parser.
    """
    parser = argparse.ArgumentParser(
        prog="jobmon-pki",
        description="Make throwaway test certificates and proxies for JobMon.",
    )
    parser.add_argument("--version", action=versionAction())
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    init = sub.add_parser(
        "init",
        help="make a CA, a host certificate and user certificates",
        description="Make a CA (DIR/ca-cert.pem, DIR/ca-key.pem, hashed "
        "directory DIR/ca/), a host certificate (DIR/hostcert.pem, "
        "DIR/hostkey.pem) and DIR/<user>/usercert.pem, userkey.pem.",
    )
    init.add_argument("directory", metavar="DIR")
    init.add_argument(
        "--users",
        type=_commaList,
        default=list(DEFAULT_USERS),
        help="comma-separated user names (default: %s)" % (",".join(DEFAULT_USERS),),
    )
    init.add_argument(
        "--host-names",
        type=_commaList,
        default=list(DEFAULT_HOST_NAMES),
        help="comma-separated DNS names and IP addresses of the host "
        "certificate (default: %s)" % (",".join(DEFAULT_HOST_NAMES),),
    )
    init.add_argument(
        "--days", type=_positive(int), default=30, help="validity (default: 30)"
    )
    init.add_argument(
        "--ca-name", default="JobMon Test CA", help="CN of the CA (default: %(default)s)"
    )
    init.add_argument("--key-type", choices=("ec", "rsa"), default="ec")

    proxy = sub.add_parser(
        "proxy",
        help="make an RFC 3820 proxy from a certificate or another proxy",
        description="Write a proxy (certificate, key, issuer chain) like "
        "grid-proxy-init.  --cert and --key may name the same proxy file "
        "to make a proxy of a proxy.",
    )
    proxy.add_argument("--cert", required=True, metavar="FILE", help="issuer certificate")
    proxy.add_argument(
        "--key", metavar="FILE", help="issuer private key (default: the --cert file)"
    )
    proxy.add_argument("--out", required=True, metavar="FILE", help="proxy file to write")
    proxy.add_argument(
        "--hours", type=_positive(float), default=12.0, help="validity (default: 12)"
    )
    policy = proxy.add_mutually_exclusive_group()
    policy.add_argument("--limited", action="store_true", help="limited proxy policy")
    policy.add_argument(
        "--independent", action="store_true", help="independent proxy policy"
    )
    proxy.add_argument(
        "--path-length",
        type=_nonNegative,
        metavar="N",
        help="at most N further proxies below this one",
    )
    proxy.add_argument("--key-type", choices=("ec", "rsa"), default="ec")

    issuer = sub.add_parser(
        "token-issuer",
        help="make a throwaway bearer-token issuer and a server token configuration",
        description="Write DIR/issuer-key.pem (the signing key), DIR/issuer.jwks (its "
        "public key) and DIR/tokens.toml, for the server's --token-issuers.",
    )
    issuer.add_argument("directory", metavar="DIR")
    issuer.add_argument("--iss", default="https://tokens.jobmon-test.example/vo",
                        help="the issuer URL (default: %(default)s)")
    issuer.add_argument("--audience", default="https://jobmon.jobmon-test.example",
                        help="the audience the server accepts (default: %(default)s)")
    issuer.add_argument("--key-type", choices=("ec", "rsa"), default="ec")

    token = sub.add_parser(
        "token",
        help="print a bearer token from an issuer made by token-issuer",
        description="Print a signed WLCG-profile token for SUB to standard output.",
    )
    token.add_argument("directory", metavar="DIR", help="the token-issuer directory")
    token.add_argument("--sub", required=True, help="the subject")
    token.add_argument("--scope", default="compute.read compute.modify compute.create",
                       help="space-separated scopes (default: %(default)s)")
    token.add_argument("--lifetime", type=float, default=3600.0,
                       help="seconds until it expires; negative: already expired "
                       "(default: %(default)s)")
    token.add_argument("--audience", help="the aud claim (default: the issuer's)")
    token.add_argument("--out", metavar="FILE", help="write it here (0600) instead")
    return parser


def _runInit(args, out):
    """
    Carry out C{jobmon-pki init} and print what was written.
    """
    pki = initPKI(
        args.directory,
        users=args.users,
        hostNames=args.host_names,
        days=args.days,
        caName=args.ca_name,
        keyType=args.key_type,
    )
    hashed = os.listdir(pki.ca.hashedDir)
    print("CA    %s" % (pki.ca.dn,), file=out)
    print("      %s, %s" % (pki.ca.certPath, pki.ca.keyPath), file=out)
    print(
        "      %s/ (hashed: %s; use as X509_CERT_DIR)"
        % (pki.ca.hashedDir, ", ".join(sorted(hashed))),
        file=out,
    )
    print("host  %s (%s)" % (pki.hostDN, ", ".join(pki.hostNames)), file=out)
    print("      %s, %s" % (pki.hostCertPath, pki.hostKeyPath), file=out)
    for cred in pki.users.values():
        print("user  %s: %s" % (cred.login, cred.dn), file=out)
        print("      %s, %s" % (cred.certPath, cred.keyPath), file=out)
    return 0


def _runProxy(args, out):
    """
    Carry out C{jobmon-pki proxy} and print what was written.
    """
    keyPath = args.key if args.key is not None else args.cert
    options = dict(
        hours=args.hours,
        limited=args.limited,
        independent=args.independent,
        pathLength=args.path_length,
        keyType=args.key_type,
    )
    try:
        cert = makeProxy(args.cert, keyPath, args.out, **options)
    except EncryptedKeyError:
        if not sys.stdin.isatty():
            raise
        password = getpass.getpass("Pass phrase for %s: " % (keyPath,))
        cert = makeProxy(args.cert, keyPath, args.out, password=password, **options)
    info = proxyInfoOf(cert)
    print("wrote %s" % (args.out,), file=out)
    print("  subject  %s" % (dnOf(cert),), file=out)
    print("  issuer   %s" % (dnOf(cert.issuer),), file=out)
    print(
        "  policy   %s, path length %s"
        % (
            info.policyName,
            "unlimited" if info.pathLength is None else info.pathLength,
        ),
        file=out,
    )
    print(
        "  valid    %s to %s"
        % (cert.not_valid_before_utc.isoformat(), cert.not_valid_after_utc.isoformat()),
        file=out,
    )
    return 0


def _runTokens(args, out):
    """
    Carry out C{jobmon-pki token-issuer} and C{jobmon-pki token}.
    """
    from jobmon.devtools.issuer import loadIssuer, makeIssuer

    if args.command == "token-issuer":
        issuer = makeIssuer(args.directory, iss=args.iss, audience=args.audience,
                            keyType=args.key_type)
        print("issuer    %s (%s)" % (issuer.iss, issuer.algorithm), file=out)
        print("keys      %s, %s" % (issuer.keyPath, issuer.jwksPath), file=out)
        print("server    --token-issuers %s" % (issuer.configPath,), file=out)
        return 0
    try:
        issuer = loadIssuer(args.directory)
    except OSError:
        raise PKIError("%s holds no token issuer; run jobmon-pki token-issuer first"
                       % (args.directory,))
    token = issuer.mint(args.sub, scope=args.scope, lifetime=args.lifetime,
                        audience=args.audience)
    if args.out:
        writeFile(args.out, (token + "\n").encode("ascii"), 0o600)
        print("wrote %s (%s)" % (args.out, issuer.identity(args.sub)), file=out)
    else:
        print(token, file=out)
    return 0


def main(argv=None, stdout=None, stderr=None):
    """
    The C{jobmon-pki} console script.

    @param argv: the arguments, without the program name; default
        C{sys.argv[1:]}.
    @param stdout: where the summary goes; default C{sys.stdout}.
    @param stderr: where errors go; default C{sys.stderr}.
    @return: the exit code: 0 on success, 2 on a usage error or an unusable
        input, reported as one line on C{stderr}.
    """
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = _parser()
    # argparse writes to sys.stderr/sys.stdout and exits; keep that
    # behaviour for usage errors and --help but return the code instead.
    savedOut, savedErr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    finally:
        sys.stdout, sys.stderr = savedOut, savedErr
    try:
        if args.command == "init":
            return _runInit(args, out)
        if args.command in ("token-issuer", "token"):
            return _runTokens(args, out)
        return _runProxy(args, out)
    except PKIError as e:
        message = str(e)
    except OSError as e:
        if e.filename is not None:
            message = "%s: %s" % (e.filename, e.strerror)
        else:
            message = str(e)
    print("jobmon-pki: error: %s" % (message,), file=err)
    return 2
