"""
TOML configuration files (C{--config FILE}) for the server and the daemon:
the generated documentation, every error case, precedence, every option,
and real C{twistd} processes (the plugin and C{etc/jobmon.tac}).
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase, TestCase

from jobmon import config
from jobmon.devtools import configdocs
from jobmon.devtools.issuer import makeIssuer
from jobmon.server.cluster.redisurl import parseRedisURL
from jobmon.server.service import Options as ServerOptions
from jobmon.server.service import buildService
from jobmon.worker.daemon import Options as DaemonOptions
from jobmon.worker.daemon import loadStartup
from tests.support import ROOT, TWISTD, TestPKI, childEnv, spawn

PROGRAMS = {"server": ServerOptions, "daemon": DaemonOptions}

REGENERATE = "run: .venv/bin/python -m jobmon.devtools.configdocs regenerate"


def writeFile(path, text):
    """
    Write C{text} to C{path}, making its directory.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


class OnlyTheFile:
    """
    Mix-in for an C{Options} class that applies the configuration file and
    skips the program's own start-up checks (credentials, URLs...), to look
    at what the file sets.
    """

    def postOptions(self):
        config.applyConfigFile(self)


class ServerFileOnly(OnlyTheFile, ServerOptions):
    """
    The server's options, the file applied, nothing checked.
    """


class DaemonFileOnly(OnlyTheFile, DaemonOptions):
    """
    The daemon's options, the file applied, nothing checked.
    """


class DescribeTests(SynchronousTestCase):
    """
    L{config.describe} and the files generated from it.
    """

    def test_describeServer(self):
        """
        Every option of the server is described with its default and help;
        C{config}, C{help} and C{version} are not options of a file.
        """
        table = {key: (default, help) for key, default, help in config.describe(ServerOptions)}
        self.assertEqual(table["https-port"][0], 8443)
        self.assertIn("XML-RPC over HTTPS", table["https-port"][1])
        self.assertEqual(table["admin"],
                         ([], "A DN that may see and query every job (repeatable), in "
                              "slash form as jobmon-query whoami prints it: "
                              "/DC=org/DC=example/CN=Site Admin; add |ISSUER-DN to accept "
                              "it only from that CA."))
        self.assertEqual(table["wake-tls13"][0], False)
        self.assertIsNone(table["ca-dir"][0])
        for missing in ("config", "help", "version"):
            self.assertNotIn(missing, table)
        options = ServerOptions()
        cli = {name for name in options.synonyms.values()} - {"config", "help", "version"}
        self.assertEqual(set(table), cli)

    def test_describeDaemon(self):
        """
        Every option of the daemon is described; the repeatables are arrays.
        """
        kinds = {o.key: o.kind for o in config.optionsOf(DaemonOptions)}
        self.assertEqual(kinds["commands"], "paths")
        self.assertEqual(kinds["redact"], "list")
        self.assertEqual(kinds["job-pid"], "int")
        self.assertEqual(kinds["op-timeout"], "float")
        self.assertEqual(kinds["workdir"], "path")
        self.assertEqual(kinds["wake"], "str")
        options = DaemonOptions()
        cli = {name for name in options.synonyms.values()} - {"config", "help", "version"}
        self.assertEqual(set(kinds), cli)

    def test_examplesGenerated(self):
        """
        C{etc/server.toml.example} and C{etc/daemon.toml.example} are what
        the options generate.
        """
        for program in PROGRAMS:
            path = os.path.join(ROOT, "etc", program + ".toml.example")
            with open(path) as f:
                text = f.read()
            if text != configdocs.exampleFile(program):
                self.fail("{} differs from the options; {}".format(path, REGENERATE))

    def test_examplesListEveryOption(self):
        """
        Each example file shows every option, commented out at its default,
        and nothing else; uncommented, it is valid TOML.
        """
        for program, cls in PROGRAMS.items():
            with open(os.path.join(ROOT, "etc", program + ".toml.example")) as f:
                text = f.read()
            shown = {}
            for line in text.splitlines():
                match = re.fullmatch(r"# ([a-z0-9-]+) =(?: (.*))?", line)
                if match:
                    shown[match.group(1)] = match.group(2)
            described = {key: default for key, default, _ in config.describe(cls)}
            self.assertEqual(set(shown), set(described), REGENERATE)
            for key, default in described.items():
                if default is None:
                    self.assertIsNone(shown[key], key)
                else:
                    parsed = tomllib.loads("v = " + shown[key])["v"]
                    self.assertEqual(parsed, default, key)
            # The file itself is valid TOML, setting only what an
            # installation as etc/ describes it needs.
            installed = configdocs.INSTALLED.get(program, ([], {}))[1]
            self.assertEqual(tomllib.loads(text), installed)

    def test_docsListEveryOption(self):
        """
        C{docs/CONFIG.md} has each program's generated table, with a row for
        every option.
        """
        with open(os.path.join(ROOT, "docs", "CONFIG.md")) as f:
            text = f.read()
        for program, cls in PROGRAMS.items():
            block = configdocs.markdownBlock(text, program)
            if block != configdocs.markdownTable(program):
                self.fail("docs/CONFIG.md: the {} table differs from the options; {}".format(
                    program, REGENERATE))
            rows = re.findall(r"^\| `([a-z0-9-]+)` \|", block, re.MULTILINE)
            self.assertEqual(rows, [key for key, _, _ in config.describe(cls)])

    def test_helpMentionsConfig(self):
        """
        C{--help} of both programs shows C{--config}.
        """
        for cls in PROGRAMS.values():
            self.assertIn("--config=", str(cls()))


class ErrorTests(SynchronousTestCase):
    """
    Bad configuration: one L{usage.UsageError} naming the file and the key.
    """

    def configFile(self, text, name="server.toml"):
        """
        Write a configuration file.
        """
        return writeFile(os.path.join(os.path.abspath(self.mktemp()), name), text)

    def refused(self, text, cls=ServerOptions, args=(), name="server.toml"):
        """
        Parse C{--config} with a file holding C{text}; return the error
        message, checked to name the file.
        """
        path = self.configFile(text, name)
        error = self.assertRaises(
            usage.UsageError, cls().parseOptions, ["--config", path] + list(args)
        )
        message = str(error)
        self.assertIn(path, message)
        self.assertNotIn("\n", message)
        return message

    def test_unknownKey(self):
        """
        An unknown key is refused with the closest option suggested.
        """
        message = self.refused('http-port = 8443\n')
        self.assertIn('unknown key "http-port"', message)
        self.assertIn("did you mean https-port?", message)

    def test_unknownKeyNoSuggestion(self):
        """
        An unknown key that resembles no option is refused without a
        suggestion.
        """
        message = self.refused('colour = "blue"\n')
        self.assertIn('unknown key "colour"', message)
        self.assertNotIn("did you mean", message)

    def test_underscores(self):
        """
        Keys are spelled with dashes; an underscore spelling is refused
        with the right one.
        """
        message = self.refused("https_port = 8443\n")
        self.assertIn('unknown key "https_port"', message)
        self.assertIn("spelled with dashes", message)
        self.assertIn("https-port", message)

    def test_table(self):
        """
        The file has no sections.
        """
        message = self.refused("[jobmon]\nhttps-port = 8443\n")
        self.assertIn('unknown key "jobmon"', message)
        self.assertIn("top-level", message)

    def test_configKey(self):
        """
        A file cannot name another configuration file.
        """
        message = self.refused('config = "other.toml"\n')
        self.assertIn("config cannot be set", message)

    def test_stringForInteger(self):
        """
        A port must be a TOML integer, not a string.
        """
        message = self.refused('https-port = "8443"\n')
        self.assertIn('https-port must be an integer, not a string ("8443")', message)

    def test_floatForInteger(self):
        """
        An integer option refuses a float.
        """
        message = self.refused("keepalive = 20.5\n")
        self.assertIn("keepalive must be an integer, not a float (20.5)", message)

    def test_booleanForInteger(self):
        """
        A boolean is not an integer, although Python's C{bool} is one.
        """
        message = self.refused("max-body = true\n")
        self.assertIn("max-body must be an integer, not a boolean (true)", message)

    def test_stringForNumber(self):
        """
        Seconds must be a number.
        """
        message = self.refused('query-timeout = "30s"\n')
        self.assertIn("query-timeout must be a number, not a string", message)

    def test_numberForString(self):
        """
        A string option refuses a number.
        """
        message = self.refused("interface = 127\n")
        self.assertIn("interface must be a string, not an integer (127)", message)

    def test_stringForFlag(self):
        """
        A flag is a boolean.
        """
        message = self.refused('wake-tls13 = "yes"\n')
        self.assertIn("wake-tls13 must be a boolean, not a string", message)

    def test_stringForRepeatable(self):
        """
        A repeatable option is an array, even of one value.
        """
        message = self.refused('admin = "/DC=org/CN=Admin"\n')
        self.assertIn("admin must be an array of strings, not a string", message)

    def test_arrayOfIntegers(self):
        """
        The elements of a repeatable option are strings.
        """
        message = self.refused('admin = ["/CN=a", 7]\n')
        self.assertIn("admin must be an array of strings, not an array holding an integer (7)",
                      message)

    def test_coercerRefusesNegative(self):
        """
        A value goes through the command line's coercer: the same limits
        apply.
        """
        message = self.refused("query-timeout = -1\n")
        self.assertIn("query-timeout = -1: must be positive", message)
        message = self.refused("max-pending-per-job = 0\n")
        self.assertIn("max-pending-per-job = 0: must be positive", message)

    def test_coercerRefusesPort(self):
        """
        A port above 65535 is refused, as on the command line.
        """
        message = self.refused("wake-port = 70000\n")
        self.assertIn("wake-port = 70000: not a port number", message)

    def test_notFinite(self):
        """
        TOML's inf and nan are not seconds.
        """
        for value in ("inf", "nan"):
            message = self.refused("query-timeout = {}\n".format(value))
            self.assertIn("query-timeout = {}: must be a finite number".format(value), message)

    def test_missingFile(self):
        """
        A file that cannot be read is named with the reason.
        """
        path = os.path.abspath(self.mktemp())
        error = self.assertRaises(usage.UsageError, ServerOptions().parseOptions,
                                  ["--config", path])
        self.assertEqual(
            str(error), "cannot read configuration file {}: No such file or directory".format(path)
        )

    def test_directory(self):
        """
        A directory is not a configuration file.
        """
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        error = self.assertRaises(usage.UsageError, ServerOptions().parseOptions,
                                  ["--config", path])
        self.assertIn("cannot read configuration file " + path, str(error))

    def test_unreadable(self):
        """
        A file without read permission is refused.  Root reads any file, so
        as root the check runs in a child that drops to an unprivileged
        account, on a file in a directory that account may enter.
        """
        import shutil
        import tempfile

        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        os.chmod(directory, 0o755)
        path = os.path.join(directory, "server.toml")
        with open(path, "w") as f:
            f.write("https-port = 8443\n")
        os.chmod(path, 0)

        def parse():
            try:
                ServerOptions().parseOptions(["--config", path])
            except usage.UsageError as e:
                return str(e)
            return "no error"

        if os.geteuid() != 0:
            message = parse()
        else:
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                try:
                    os.close(r)
                    os.setgroups([])
                    os.setgid(65534)
                    os.setuid(65534)
                    os.write(w, parse().encode())
                finally:
                    os._exit(0)
            os.close(w)
            with os.fdopen(r, "rb") as pipe:
                message = pipe.read().decode()
            os.waitpid(pid, 0)
        self.assertIn("cannot read configuration file " + path, message)
        self.assertIn("Permission denied", message)

    def test_syntaxError(self):
        """
        A TOML syntax error gives the line and column.
        """
        message = self.refused("interface = \"127.0.0.1\"\nhttps-port = 84 43\n")
        self.assertIn("TOML syntax error", message)
        self.assertIn("line 2, column 17", message)

    def test_duplicateKey(self):
        """
        A key given twice is a TOML error.
        """
        message = self.refused("https-port = 1\nhttps-port = 2\n")
        self.assertIn("line 2", message)

    def test_notUTF8(self):
        """
        A file that is not UTF-8 is refused.
        """
        path = os.path.join(os.path.abspath(self.mktemp()), "server.toml")
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(b'interface = "\xff"\n')
        error = self.assertRaises(usage.UsageError, ServerOptions().parseOptions,
                                  ["--config", path])
        self.assertIn("not UTF-8", str(error))
        self.assertIn(path, str(error))

    def test_overriddenKeyStillChecked(self):
        """
        A mistake in the file stops start-up even when the command line
        gives the same option.
        """
        message = self.refused('https-port = "x"\n', args=["--https-port", "8443"])
        self.assertIn("https-port must be an integer", message)

    def test_laterCheckNamesFile(self):
        """
        A value the options' own checks refuse (not the coercer) is reported
        with the file that set it.
        """
        message = self.refused('crl-check = "sometimes"\n')
        self.assertIn("--crl-check must be one of", message)
        self.assertIn("(crl-check is set in ", message)
        message = self.refused('udp-broadcast = "nowhere"\n')
        self.assertIn("--udp-broadcast must be ADDR:PORT", message)
        self.assertIn("(udp-broadcast is set in ", message)

    def test_daemonErrors(self):
        """
        The daemon's file is checked the same way.
        """
        message = self.refused("job_id = \"1\"\n", cls=DaemonOptions, name="job.toml")
        self.assertIn("job-id", message)
        message = self.refused("job-pid = \"123\"\n", cls=DaemonOptions, name="job.toml")
        self.assertIn("job-pid must be an integer, not a string", message)
        message = self.refused("max-result = -5\n", cls=DaemonOptions, name="job.toml")
        self.assertIn("max-result = -5: must be positive", message)
        message = self.refused("redact = \"TOKEN\"\n", cls=DaemonOptions, name="job.toml")
        self.assertIn("redact must be an array of strings", message)
        message = self.refused(
            'server = "https://h:1/RPC2"\njob-id = "1"\nwake = "carrier-pigeon"\n',
            cls=DaemonOptions, name="job.toml",
        )
        self.assertIn("--wake must be tcp, udp or poll (wake is set in ", message)


class PKICase:
    """
    Mix-in: a throwaway PKI, its credentials readable from a configuration
    file in the same directory.
    """

    def makePKI(self):
        """
        Make the PKI; C{self.base} is its directory.
        """
        self.tpki = TestPKI(os.path.abspath(self.mktemp()))
        self.base = self.tpki.base
        return self.tpki

    def relative(self, path):
        """
        C{path} relative to the PKI's directory.
        """
        return os.path.relpath(path, self.base)

    def serverConfig(self, extra=""):
        """
        A server configuration file giving the credentials by relative paths.
        """
        text = (
            'interface = "127.0.0.1"\n'
            "https-port = 0\n"
            "wake-port = 0\n"
            "hostcert = {}\nhostkey = {}\nca-dir = {}\n"
            'audit-log = "audit.jsonl"\n'
            'history = "history.sqlite3"\n'
        ).format(
            json.dumps(self.relative(self.tpki.hostCert)),
            json.dumps(self.relative(self.tpki.hostKey)),
            json.dumps(self.relative(self.tpki.caDir)),
        )
        return writeFile(os.path.join(self.base, "server.toml"), text + extra)

    def parseServer(self, args):
        """
        Parse the server's options fully, and run the server's start-up
        checks on them (L{ServerService.load}: the files they name are
        read, the audit log opened); close the audit log afterwards.
        """
        options = ServerOptions()
        options.parseOptions(args)
        service = buildService(options, MemoryReactorClock(), installSignal=False)
        self.addCleanup(service.audit.close)
        service.load()
        return options


class PrecedenceTests(PKICase, SynchronousTestCase):
    """
    The command line beats the file, the file beats the defaults.
    """

    def setUp(self):
        self.makePKI()

    def test_fileBeatsDefault(self):
        """
        Keys of the file replace the defaults; options in neither keep
        theirs.
        """
        path = self.serverConfig("query-timeout = 5\nwake-tls13 = true\n")
        options = self.parseServer(["--config", path])
        self.assertEqual(options["https-port"], 0)
        self.assertEqual(options["query-timeout"], 5.0)
        self.assertIsInstance(options["query-timeout"], float)
        self.assertEqual(options["wake-tls13"], 1)
        self.assertEqual(options["keepalive"], 20)
        self.assertEqual(options.fromConfigFile["query-timeout"], path)

    def test_commandLineBeatsFile(self):
        """
        An option on the command line wins over the file's key, before or
        after C{--config}.
        """
        path = self.serverConfig("query-timeout = 5\nkeepalive = 7\n")
        options = self.parseServer(["--query-timeout", "9", "--config", path,
                                    "--keepalive=11"])
        self.assertEqual(options["query-timeout"], 9.0)
        self.assertEqual(options["keepalive"], 11)

    def test_commandLineDefaultValueBeatsFile(self):
        """
        Given on the command line with the default value, the option still
        wins: what counts is that it was given.
        """
        path = self.serverConfig("query-timeout = 5\nmax-per-peer = 10\n")
        options = self.parseServer(["--config", path, "--query-timeout", "30",
                                    "--max-per-peer", "1024"])
        self.assertEqual(options["query-timeout"], 30.0)
        self.assertEqual(options["max-per-peer"], 1024)

    def test_abbreviatedOption(self):
        """
        An option given by an unambiguous abbreviation (getopt accepts them)
        counts as given.
        """
        path = self.serverConfig("query-burst = 5\n")
        options = self.parseServer(["--config", path, "--query-b", "200"])
        self.assertEqual(options["query-burst"], 200)

    def test_repeatableReplaced(self):
        """
        A repeatable option on the command line replaces the file's array.
        """
        path = self.serverConfig('admin = ["/CN=from-file-1", "/CN=from-file-2"]\n')
        options = self.parseServer(["--config", path])
        self.assertEqual(options["admin"], ["/CN=from-file-1", "/CN=from-file-2"])
        options = self.parseServer(["--config", path, "--admin", "/CN=cli"])
        self.assertEqual(options["admin"], ["/CN=cli"])

    def test_flagFromCommandLine(self):
        """
        A flag given on the command line stays set whatever the file says.
        """
        path = self.serverConfig("wake-tls13 = false\n")
        options = self.parseServer(["--config", path, "--wake-tls13"])
        self.assertEqual(options["wake-tls13"], 1)
        options = self.parseServer(["--config", path])
        self.assertEqual(options["wake-tls13"], 0)

    def test_relativePaths(self):
        """
        Relative paths in the file are relative to the file's directory, not
        to the working directory.
        """
        path = self.serverConfig('port-file = "run/ports.json"\n')
        options = self.parseServer(["--config", path])
        self.assertEqual(options["hostcert"], self.tpki.hostCert)
        self.assertEqual(options["ca-dir"], self.tpki.caDir)
        self.assertEqual(options["audit-log"], os.path.join(self.base, "audit.jsonl"))
        self.assertEqual(options["port-file"], os.path.join(self.base, "run", "ports.json"))
        self.assertTrue(os.path.exists(os.path.join(self.base, "audit.jsonl")))

    def test_relativeConfigPath(self):
        """
        A relative C{--config} is relative to the working directory; the
        paths in it, to its own directory.
        """
        path = self.serverConfig()
        options = self.parseServer(["--config", os.path.relpath(path)])
        self.assertEqual(options["hostkey"], self.tpki.hostKey)

    def test_noConfig(self):
        """
        Without C{--config}, nothing changes.
        """
        options = self.parseServer([
            "--https-port", "0", "--hostcert", self.tpki.hostCert, "--hostkey",
            self.tpki.hostKey, "--ca-dir", self.tpki.caDir, "--audit-log",
            os.path.join(self.base, "a.jsonl"),
        ])
        self.assertEqual(options["https-port"], 0)
        self.assertEqual(options["wake-port"], 8444)
        self.assertEqual(options.fromConfigFile, {})

    def test_daemonPrecedence(self):
        """
        The daemon: the command line beats the file, and the file beats
        C{$JOBMON_SERVER}.
        """
        old = os.environ.get("JOBMON_SERVER")
        os.environ["JOBMON_SERVER"] = "https://from-env.example:1/RPC2"
        self.addCleanup(
            lambda: os.environ.pop("JOBMON_SERVER") if old is None
            else os.environ.__setitem__("JOBMON_SERVER", old)
        )
        path = writeFile(os.path.join(self.base, "job.toml"), (
            'server = "https://from-file.example:8443/RPC2"\n'
            'job-id = "file.1"\nproxy = {}\nca-dir = {}\nop-timeout = 4\n'
        ).format(json.dumps(self.relative(self.tpki.proxies["alice"])),
                 json.dumps(self.relative(self.tpki.caDir))))
        options = DaemonOptions()
        options.parseOptions(["--config", path, "--job-id", "cli.1", "--workdir", self.base])
        self.assertEqual(options["server"], "https://from-file.example:8443/RPC2")
        self.assertEqual(options["job-id"], "cli.1")
        self.assertEqual(options["op-timeout"], 4.0)
        self.assertEqual(options["proxy"], self.tpki.proxies["alice"])


def sampleValue(option, base):
    """
    A TOML value for C{option} other than its default, and the value the
    options should hold after reading it from a file in C{base}.
    """
    kind = option.kind
    if kind == "flag":
        return True, 1
    if kind == "int":
        value = option.default + 1 if isinstance(option.default, int) else 7
        return value, value
    if kind == "float":
        value = (option.default or 1.0) * 2 + 0.5
        return value, value
    if kind == "str":
        return "sample-" + option.key, "sample-" + option.key
    if kind == "path":
        return "sub/" + option.key, os.path.join(base, "sub", option.key)
    if kind == "list" and option.key in ("admin-fqan", "share"):
        return ["/a_" + option.key.replace("-", "_"), "/b/Role=c"], None
    if kind == "list" and option.key == "admin":
        return ["/CN=A_ADMIN", "/CN=B"], None
    if kind == "list":
        return ["A_" + option.key.upper().replace("-", "_"), "B"], None
    if kind == "paths":
        return ["x/one.toml", "/abs/two.toml"], [os.path.join(base, "x/one.toml"),
                                                 "/abs/two.toml"]
    raise AssertionError(kind)


class EveryOptionTests(PKICase, SynchronousTestCase):
    """
    Every option of both programs can be set from a file.
    """

    def assertEachSettable(self, program, fileOnly):
        """
        For each option, a file setting it alone sets it.
        """
        base = os.path.abspath(self.mktemp())
        count = 0
        for option in config.optionsOf(PROGRAMS[program]):
            value, expected = sampleValue(option, base)
            if expected is None:
                expected = value
            text = "{} = {}\n".format(option.key, config.tomlValue(value))
            path = writeFile(os.path.join(base, "{}.toml".format(option.key)), text)
            options = fileOnly()
            options.parseOptions(["--config", path])
            self.assertEqual(options[option.key], expected, option.key)
            self.assertNotEqual(options[option.key], option.default, option.key)
            count += 1
        self.assertGreater(count, 10)

    def test_everyServerOption(self):
        """
        Each server option, one at a time.
        """
        self.assertEachSettable("server", ServerFileOnly)

    def test_everyDaemonOption(self):
        """
        Each daemon option, one at a time.
        """
        self.assertEachSettable("daemon", DaemonFileOnly)

    def test_wholeServerFile(self):
        """
        A server file setting every option passes the server's start-up
        checks, and each value arrives.
        """
        self.makePKI()
        dn = self.tpki.dn("admin")
        values = {
            "interface": ('"127.0.0.1"', "127.0.0.1"),
            "https-port": ("0", 0),
            "wake-port": ("0", 0),
            "hostcert": (json.dumps(self.relative(self.tpki.hostCert)), self.tpki.hostCert),
            "hostkey": (json.dumps(self.relative(self.tpki.hostKey)), self.tpki.hostKey),
            "ca-dir": (json.dumps(self.relative(self.tpki.caDir)), self.tpki.caDir),
            "crl-check": ('"off"', "off"),
            "reload-interval": ("5", 5.0),
            "query-timeout": ("7.5", 7.5),
            "keepalive": ("9", 9),
            "connect-grace": ("11", 11.0),
            "max-body": ("4096", 4096),
            "max-pending-per-job": ("3", 3),
            "max-pending-per-user": ("4", 4),
            "query-rate": ("2.5", 2.5),
            "query-burst": ("6", 6),
            "max-per-peer": ("8", 8),
            "user-rate": ("2.5", 2.5),
            "user-burst": ("7", 7),
            "daemon-rate": ("30", 30.0),
            "daemon-burst": ("40", 40),
            "auth-failure-rate": ("0.5", 0.5),
            "auth-failure-burst": ("3", 3),
            "max-jobs-per-owner": ("11", 11),
            "registration-rate": ("5", 5.0),
            "registration-burst": ("9", 9),
            "history-days": ("7", 7.0),
            "history-max-rows": ("100", 100),
            "audit-refusal-budget": ("2048", 2048),
            "request-deadline": ("12", 12.0),
            "idle-timeout": ("13", 13.0),
            "handshake-deadline": ("3", 3.0),
            "send-deadline": ("7", 7.0),
            "connection-rate": ("9.5", 9.5),
            "connection-burst": ("11", 11),
            "udp-broadcast": ('"127.255.255.255:9999"', ("127.255.255.255", 9999)),
            "reregister-interval": ("14", 14.0),
            "missed-registrations": ("2", 2),
            "cleanup-interval": ("1.5", 1.5),
            "max-poll": ("16", 16.0),
            "reserve-ids": ("3600", 3600.0),
            "metrics-port": ("0", 0),
            "metrics-interface": ('"0.0.0.0"', "0.0.0.0"),
            "audit-log": ('"logs/audit.jsonl"', os.path.join(self.base, "logs", "audit.jsonl")),
            "audit-rotate": ("1000", 1000),
            "audit-keep": ("2", 2),
            "port-file": ('"ports.json"', os.path.join(self.base, "ports.json")),
            "wake-tls13": ("true", 1),
            "wake-tls-only": ("true", 1),
            "log-dir": ('"logs"', os.path.join(self.base, "logs")),
            "history": ('"h.sqlite3"', os.path.join(self.base, "h.sqlite3")),
            "log-single": ("true", 1),
            "redis": ('"redis://:s3cret@127.0.0.1:6390/2"',
                      parseRedisURL("redis://:s3cret@127.0.0.1:6390/2")),
            "redis-prefix": ('"site-a:"', "site-a:"),
            "admin": (json.dumps([dn]), [dn]),
            "admin-fqan": ('["/cms/Role=lcgadmin"]', ["/cms/Role=lcgadmin"]),
            "vomsdir": ('"vomsdir"', os.path.join(self.base, "vomsdir")),
            "token-issuers": ('"issuer/tokens.toml"',
                              os.path.join(self.base, "issuer", "tokens.toml")),
        }
        makeIssuer(os.path.join(self.base, "issuer"))
        os.makedirs(os.path.join(self.base, "vomsdir"))
        self.assertEqual({key for key, _, _ in config.describe(ServerOptions)}, set(values),
                         "add the server's new options to this test")
        os.makedirs(os.path.join(self.base, "logs"))
        path = writeFile(os.path.join(self.base, "full.toml"),
                         "".join("{} = {}\n".format(k, v) for k, (v, _) in values.items()))
        options = self.parseServer(["--config", path])
        for key, (_, expected) in values.items():
            self.assertEqual(options[key], expected, key)
        self.assertEqual(set(options.fromConfigFile), set(values))

    def test_wholeDaemonFile(self):
        """
        A daemon file setting every option passes the daemon's start-up
        checks, and each value arrives.
        """
        self.makePKI()
        writeFile(os.path.join(self.base, "site", "commands.toml"),
                  '[commands.hello]\nargv = ["echo", "hello"]\n')
        os.makedirs(os.path.join(self.base, "work"))
        pid = os.getpid()
        values = {
            "server": ('"https://127.0.0.1:1/RPC2"', "https://127.0.0.1:1/RPC2"),
            "job-id": ('"1234.0"', "1234.0"),
            "workdir": ('"work"', os.path.join(self.base, "work")),
            "proxy": (json.dumps(self.relative(self.tpki.proxies["alice"])),
                      self.tpki.proxies["alice"]),
            "ca-dir": (json.dumps(self.relative(self.tpki.caDir)), self.tpki.caDir),
            "wake": ('"poll"', "poll"),
            "max-result": ("2048", 2048),
            "op-timeout": ("3.5", 3.5),
            "retry-initial-delay": ("0.5", 0.5),
            "retry-max-delay": ("4", 4.0),
            "host-name": ('"worker-7"', "worker-7"),
            "job-pid": (str(pid), pid),
            "allow-signal": ('"USR1,TERM"', frozenset(["USR1", "TERM"])),
            "wake-tls": ("true", 1),
            "commands": ('["site/commands.toml"]', [os.path.join(self.base, "site",
                                                                  "commands.toml")]),
            "redact": ('["MYAPP_PIN"]', ("MYAPP_PIN",)),
            "share": ('["/cms", "/cms/Role=NULL"]', ["/cms", "/cms"]),
            "auth": ('"x509"', "x509"),
            "token-file": ('"token"', os.path.join(self.base, "token")),
        }
        self.assertEqual({key for key, _, _ in config.describe(DaemonOptions)}, set(values),
                         "add the daemon's new options to this test")
        path = writeFile(os.path.join(self.base, "job.toml"),
                         "".join("{} = {}\n".format(k, v) for k, (v, _) in values.items()))
        options = DaemonOptions()
        options.parseOptions(["--config", path])
        for key, (_, expected) in values.items():
            self.assertEqual(options[key], expected, key)
        self.assertIn("hello", loadStartup(options).commandTable)


class UnitFileTests(SynchronousTestCase):
    """
    C{etc/jobmon-server.service}.
    """

    path = os.path.join(ROOT, "etc", "jobmon-server.service")

    def settings(self):
        """
        The unit's settings, by name.
        """
        found = {}
        with open(self.path) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith(("#", "[")):
                    key, _, value = line.partition("=")
                    found.setdefault(key, []).append(value)
        return found

    def test_settings(self):
        """
        The unit runs the server from /etc/jobmon/server.toml as its own
        user, with room for every wake channel, restarts, reloads with
        SIGHUP, and is hardened.
        """
        s = self.settings()
        self.assertTrue(s["ExecStart"][0].endswith(
            "twistd --nodaemon --pidfile= jobmon-server --config /etc/jobmon/server.toml"))
        self.assertEqual(s["User"], ["jobmon"])
        self.assertEqual(s["LimitNOFILE"], ["65536"])
        self.assertEqual(s["Restart"], ["on-failure"])
        self.assertEqual(s["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(s["NoNewPrivileges"], ["yes"])
        self.assertEqual(s["ProtectSystem"], ["strict"])
        self.assertEqual(s["PrivateTmp"], ["yes"])
        self.assertIn("/var/log/jobmon", s["ReadWritePaths"][0].split())

    def test_verify(self):
        """
        C{systemd-analyze verify} accepts the unit (with this machine's
        twistd in ExecStart).
        """
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise self.skipTest("no systemd-analyze")
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        with open(self.path) as f:
            text = f.read().replace("/usr/local/bin/twistd", TWISTD)
        unit = writeFile(os.path.join(base, "jobmon-server.service"), text)
        result = subprocess.run([analyze, "verify", unit], capture_output=True, timeout=60)
        self.assertEqual((result.returncode, result.stderr.decode()), (0, ""))


class TwistdTests(PKICase, TestCase):
    """
    Real C{twistd} processes with configuration files.
    """

    timeout = 60

    def assertOneLine(self, result, expected):
        """
        The process failed with C{expected} as its last line, said once,
        and no traceback.
        """
        output = (result.stdout + result.stderr).decode()
        self.assertEqual(result.returncode, 1, output)
        self.assertNotIn("Traceback", output)
        lines = output.strip().splitlines()
        self.assertIn(expected, lines[-1])
        self.assertEqual(output.count(expected), 1, output)

    def test_badConfig(self):
        """
        C{twistd jobmon-server --config bad.toml} exits with one line naming
        the file and the key.
        """
        path = writeFile(os.path.join(os.path.abspath(self.mktemp()), "bad.toml"),
                         'interface = "127.0.0.1"\nhttps-port = "8443"\n')
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "jobmon-server", "--config", path],
            env=childEnv(), capture_output=True, timeout=60,
        )
        self.assertOneLine(
            result, '{}: https-port must be an integer, not a string ("8443")'.format(path))

    def test_badDaemonConfig(self):
        """
        The daemon too.
        """
        path = writeFile(os.path.join(os.path.abspath(self.mktemp()), "job.toml"),
                         'job_id = "1"\n')
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "jobmon-daemon", "--config", path],
            env=childEnv(), capture_output=True, timeout=60,
        )
        self.assertOneLine(result, '{}: unknown key "job_id"'.format(path))

    def test_badDaemonFile(self):
        """
        A daemon whose CA directory cannot be read stops as it starts, with
        one line naming it (read by L{jobmon.worker.daemon.loadStartup}, not
        while parsing).
        """
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        missing = os.path.join(base, "missing")
        path = writeFile(os.path.join(base, "job.toml"), (
            'server = "https://jobmon.example/RPC2"\njob-id = "1.0"\n'
            'proxy = "missing"\nca-dir = "missing"\n'
        ))
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "jobmon-daemon", "--config", path],
            env=childEnv(), capture_output=True, timeout=60, cwd=base,
        )
        self.assertOneLine(
            result, "jobmon-daemon: cannot read {}: no such file or directory".format(missing))

    def test_badConfigTac(self):
        """
        C{etc/jobmon.tac} with a bad C{JOBMON_CONFIG} stops with one line,
        without a traceback.
        """
        path = writeFile(os.path.join(os.path.abspath(self.mktemp()), "bad.toml"),
                         "query-timeout = 0\n")
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "-y", os.path.join(ROOT, "etc", "jobmon.tac")],
            env=childEnv(JOBMON_CONFIG=path), capture_output=True, timeout=60,
        )
        self.assertOneLine(result, "jobmon.tac: {}: query-timeout = 0: must be positive".format(
            path))

    async def waitForFile(self, path):
        """
        Wait until C{path} exists.
        """
        for _ in range(100):
            if os.path.exists(path):
                return
            await deferLater(reactor, 0.1, lambda: None)
        self.fail("{} never appeared".format(path))

    async def test_pluginFromConfig(self):
        """
        C{twistd jobmon-server --config FILE} runs the server from the file;
        the command line adds to it.
        """
        self.makePKI()
        path = self.serverConfig()
        portFile = os.path.join(self.base, "ports.json")
        proto = spawn(self, "jobmon-server", [
            "-n", "--pidfile=", "jobmon-server", "--config", path, "--port-file", portFile,
        ])
        match = await proto.waitFor(r"XML-RPC on (\d+), TCP wake on (\d+)")
        await self.waitForFile(portFile)
        with open(portFile) as f:
            self.assertEqual(json.load(f)["https"], int(match.group(1)))
        self.assertTrue(os.path.exists(os.path.join(self.base, "audit.jsonl")))

    async def test_tacFromConfig(self):
        """
        C{twistd -n -y etc/jobmon.tac} runs the server from C{JOBMON_CONFIG};
        C{JOBMON_SERVER_ARGS} still applies, and wins over the file.
        """
        self.makePKI()
        path = self.serverConfig()
        portFile = os.path.join(self.base, "ports.json")
        audit = os.path.join(self.base, "from-args.jsonl")
        args = ["--port-file", portFile, "--audit-log", audit]
        env = childEnv(JOBMON_CONFIG=path,
                       JOBMON_SERVER_ARGS=" ".join(shlex.quote(a) for a in args))
        proto = spawn(
            self, "tac", ["-n", "--pidfile=", "-y", os.path.join(ROOT, "etc", "jobmon.tac")],
            env=env,
        )
        match = await proto.waitFor(r"XML-RPC on (\d+), TCP wake on (\d+)")
        await self.waitForFile(portFile)
        with open(portFile) as f:
            ports = json.load(f)
        self.assertEqual((ports["https"], ports["wake"]),
                         (int(match.group(1)), int(match.group(2))))
        self.assertTrue(os.path.exists(audit))
        self.assertFalse(os.path.exists(os.path.join(self.base, "audit.jsonl")))
