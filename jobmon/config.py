"""
TOML configuration files for the server and the daemon: C{--config FILE}.

A file sets options by their long command-line names, spelled with dashes::

    https-port = 8443
    query-timeout = 30
    admin = ["/DC=org/DC=example/CN=Site Admin"]
    wake-tls13 = true

Each value must have the TOML type the option takes (an integer for a port,
a number for seconds, a string for a path, an array of strings for a
repeatable option, a boolean for a flag) and then goes through the same
coercer as on the command line, so the same limits apply.  Relative paths
are relative to the file's directory.

An option given on the command line wins over the same key in the file,
and the file over the option's default.  Which options the command line
gave is recorded as they are parsed (L{commandLineOverFile} wraps the
parser's dispatch table), not guessed by comparing values with defaults:
C{--https-port 8443} given explicitly still beats C{https-port = 9000} in
the file.

Every mistake (unreadable file, TOML syntax, unknown key, wrong type, value
refused) is one L{usage.UsageError} naming the file and the key, which
twistd prints without a traceback.

The option tables of C{docs/CONFIG.md} and the example files
C{etc/server.toml.example} and C{etc/daemon.toml.example} are generated
from the L{usage.Options} classes (C{python -m jobmon.devtools.configdocs
regenerate}); a test checks they match.
"""

import contextlib
import difflib
import json
import math
import os
import re
import tomllib

from attrs import frozen
from twisted.python import reflect, usage, util

CONFIG_KEY = "config"
"""The option naming the file; a file cannot set it."""

_NOT_OPTIONS = frozenset(["help", "version", CONFIG_KEY])


_KIND_NAMES = {
    "flag": "boolean",
    "int": "integer",
    "float": "number",
    "str": "string",
    "path": "path",
    "list": "array of strings",
    "paths": "array of paths",
}


@frozen
class Option:
    """
    One option as a configuration file sees it.

    @ivar key: the long option name, the key in the file.
    @ivar default: the default value (C{None}: not set).
    @ivar help: the option's help text, on one line.
    @ivar kind: C{"flag"}, C{"int"}, C{"float"}, C{"str"}, C{"path"},
        C{"list"} (a repeatable option) or C{"paths"} (a repeatable path).
    @ivar coerce: the command line's coercer for a parameter, else C{None}.
    """

    key: str
    default: object
    help: str
    kind: str
    coerce: object = None

    @property
    def typeName(self):
        """
        The TOML type the option takes, in words.
        """
        return _KIND_NAMES[self.kind]


def _oneLine(text):
    return " ".join((text or "").split())


def _parameterKind(coerce, default):
    """
    The TOML type of a parameter, from its coercer (or its default when the
    coercer is unknown).
    """
    name = getattr(coerce, "__name__", "")
    if coerce is None or coerce is str:
        return "str"
    if name in ("int", "portNumber"):
        return "int"
    if name == "float":
        return "float"
    if isinstance(default, bool):
        return "flag"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    return "str"


def optionsOf(optionsClass):
    """
    Every option of a L{usage.Options} class that a file can set, in the
    order they are declared (parameters, flags, then handler methods such
    as the repeatable C{opt_admin}).

    Keys listed in the class's C{configPaths} are paths.

    @return: a list of L{Option}.
    """
    instance = optionsClass()
    paths = frozenset(getattr(optionsClass, "configPaths", ()))
    found = []
    parameters = []
    reflect.accumulateClassList(optionsClass, "optParameters", parameters)
    for parameter in parameters:
        key, _, default, doc, coerce = util.padTo(5, parameter)
        if key in _NOT_OPTIONS:
            continue
        kind = _parameterKind(coerce, default)
        if kind == "str" and key in paths:
            kind = "path"
        found.append(Option(key, default, _oneLine(doc), kind, coerce or str))
    flags = []
    reflect.accumulateClassList(optionsClass, "optFlags", flags)
    for flag in flags:
        key, _, doc = util.padTo(3, flag)
        found.append(Option(key, False, _oneLine(doc), "flag"))
    handlers = {}
    reflect.addMethodNamesToDict(optionsClass, handlers, "opt_")
    for name in sorted(handlers):
        key = name.replace("_", "-")
        # An alias (opt_x = opt_long) is listed once, by its long name.
        if key in _NOT_OPTIONS or instance.synonyms.get(key, key) != key:
            continue
        method = getattr(instance, "opt_" + name)
        default = instance.get(key)
        if usage.flagFunction(method, name):
            kind = "flag"
            default = False
        elif isinstance(default, list):
            kind = "paths" if key in paths else "list"
            default = list(default)
        else:
            kind = "path" if key in paths else "str"
        found.append(Option(key, default, _oneLine(method.__doc__), kind))
    return found


def describe(optionsClass):
    """
    The documentation table of an options class.

    @return: a list of C{(key, default, help)}, one per option a file can
        set; C{default} is C{None} for an option not set by default.
    """
    return [(o.key, o.default, o.help) for o in optionsOf(optionsClass)]


@contextlib.contextmanager
def commandLineOverFile(options):
    """
    Parse a command line, recording which options it gives so that
    L{applyConfigFile} leaves them alone, and naming the configuration file
    in an error about an option the file set::

        def parseOptions(self, options=None):
            with config.commandLineOverFile(self):
                super().parseOptions(options)

    Every entry of the parser's dispatch table is wrapped, so an option
    counts as given however it was spelled (C{--https-port=8443},
    C{--https 8443}, a short name, an alias) and whatever its value,
    the default included.
    """
    given = options.givenOnCommandLine = set()
    options.fromConfigFile = {}
    dispatch = options._dispatch
    for name, handler in list(dispatch.items()):
        dispatch[name] = _recording(handler, given)
    try:
        yield
    except usage.UsageError as e:
        raise _naming(options, e) from None


def _recording(handler, given):
    if isinstance(handler, usage.CoerceParameter):
        # A parameter: stay a CoerceParameter (the parser and the help text
        # look for one).
        recorder = usage.CoerceParameter(handler.options, handler.coerce)
        recorder.doc = handler.doc

        def dispatch(name, value):
            given.add(name)
            handler.dispatch(name, value)

        recorder.dispatch = dispatch
        return recorder

    def record(name, value=None):
        given.add(name)
        return handler(name, value)

    return record


def _naming(options, error):
    """
    Add the file to a start-up error about an option the file set (such as
    C{--crl-check must be one of ...}).
    """
    message = str(error)
    for key in re.findall(r"--([a-z0-9][a-z0-9-]*)", message):
        path = options.fromConfigFile.get(key)
        if path is not None:
            return usage.UsageError("{} ({} is set in {})".format(message, key, path))
    return error


def loadConfigFile(path):
    """
    Read a TOML configuration file.

    @return: its top-level table, a C{dict}.
    @raise usage.UsageError: if it cannot be read or is not TOML.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise usage.UsageError(
            "cannot read configuration file {}: {}".format(path, e.strerror or e)
        )
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise usage.UsageError(
            "{}: not UTF-8 text (byte {} is not)".format(path, e.start)
        )
    except tomllib.TOMLDecodeError as e:
        raise usage.UsageError("{}: TOML syntax error: {}".format(path, e))


class FileOptions(usage.Options):
    """
    Options that may also come from a C{--config} TOML file: the command
    line is parsed first and remembered, and C{postOptions} of subclasses
    calls L{applyConfigFile} first to fill in the rest.

    Run by C{twistd} (as a plugin's sub-command, with a C{parent}), a
    mistake is one line, C{PROGRAM: what is wrong}, on standard error and
    exit status 1: twistd itself would print its whole usage (about a
    hundred lines) before the one line that matters.

    @cvar program: the name that line (and C{--version}) begins with.
    """

    program = "jobmon"

    def parseOptions(self, options=None):
        """
        Parse the command line, noting which options it gave.

        @raise usage.UsageError: a mistake, when parsed on its own.
        @raise SystemExit: a mistake, when parsed by C{twistd}.
        """
        try:
            with commandLineOverFile(self):
                super().parseOptions(options)
        except usage.UsageError as e:
            if getattr(self, "parent", None) is None:
                raise
            raise SystemExit(oneLineError(self.program, e)) from None

    def opt_version(self):
        """
        Print the JobMon version and exit.
        """
        from jobmon import version

        print("{} (JobMon) {}".format(self.program, version()))
        raise SystemExit(0)


def oneLineError(program, error):
    """
    The one line a start-up mistake is reported with: C{PROGRAM: message},
    with a pointer to C{--help} when an option itself is unknown or lacks
    its value.
    """
    message = " ".join(str(error).split())
    if "not recognized" in message or "requires argument" in message:
        message += " (twistd {} --help lists the options)".format(program)
    return "{}: {}".format(program, message)


def applyConfigFile(options):
    """
    Fill in the options that the command line did not give from the file
    named by the C{config} option, if any.  Call it first in C{postOptions},
    inside L{commandLineOverFile}.

    Every key of the file is checked, those the command line overrides
    included: a mistake in the file stops start-up whatever the command
    line says.

    @raise usage.UsageError: naming the file and the key.
    """
    path = options.get(CONFIG_KEY)
    if not path:
        return
    given = getattr(options, "givenOnCommandLine", set())
    if not hasattr(options, "fromConfigFile"):
        options.fromConfigFile = {}
    table = loadConfigFile(path)
    base = os.path.dirname(os.path.abspath(path))
    known = {o.key: o for o in optionsOf(type(options))}
    for key, value in table.items():
        option = known.get(key)
        if option is None:
            raise usage.UsageError(_unknownKey(path, key, value, known))
        checked = _check(path, option, value, base)
        if key in given:
            continue
        _apply(options, path, option, checked)
        options.fromConfigFile[key] = path


def _unknownKey(path, key, value, known):
    if key == CONFIG_KEY:
        return "{}: {} cannot be set in a configuration file".format(path, key)
    text = "{}: unknown key {}".format(path, json.dumps(key))
    dashed = key.replace("_", "-")
    if dashed != key and dashed in known:
        return "{}: keys are spelled with dashes, like the command-line options: {}".format(
            text, dashed
        )
    close = difflib.get_close_matches(dashed, list(known), n=1, cutoff=0.6)
    if close:
        return "{} (did you mean {}?)".format(text, close[0])
    if isinstance(value, dict):
        return "{} (the file has no tables: options are top-level keys)".format(text)
    return text


_TOML_TYPES = [
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "an array"),
    (dict, "a table"),
]


def _typeOf(value):
    for kind, name in _TOML_TYPES:
        if isinstance(value, kind):
            return name
    return "a date or time"


def _show(value):
    """
    A value from a file as TOML would write it (short), for messages.
    """
    try:
        text = tomlValue(value)
    except TypeError:
        # A date or time, or an array holding one or a table.
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrongType(path, option, value, inArray=False):
    return usage.UsageError(
        "{}: {} must be {}, not {} ({})".format(
            path,
            option.key,
            _article(option.typeName),
            ("an array holding " if inArray else "") + _typeOf(value),
            _show(value),
        )
    )


def _article(name):
    return ("an " if name[0] in "aeiou" else "a ") + name


def _check(path, option, value, base):
    """
    Check a value's TOML type, resolve relative paths and run the option's
    coercer.

    @return: the value to set.
    """
    kind = option.kind
    if kind == "flag":
        if not isinstance(value, bool):
            raise _wrongType(path, option, value)
        return value
    if kind in ("list", "paths"):
        if not isinstance(value, list):
            raise _wrongType(path, option, value)
        for item in value:
            if not isinstance(item, str):
                raise _wrongType(path, option, item, inArray=True)
        if kind == "paths":
            value = [os.path.join(base, item) if item else item for item in value]
        return value
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise usage.UsageError(
                "{}: {} = {}: must be a finite number".format(path, option.key, _show(value))
            )
    else:
        ok = isinstance(value, str)
    if not ok:
        raise _wrongType(path, option, value)
    if kind == "path" and value:
        value = os.path.join(base, value)
    if option.coerce is None:
        # A handler's value (such as C{opt_server}): the handler checks it.
        return value
    try:
        return option.coerce(value)
    except (ValueError, TypeError) as e:
        raise usage.UsageError(
            "{}: {} = {}: {}".format(path, option.key, _show(value), e or "refused")
        )


def _apply(options, path, option, value):
    if option.coerce is not None:
        options[option.key] = value
        return
    if option.kind == "flag" and option.key in options.defaults:
        # A flag of optFlags: twistd's 1 or 0.
        options[option.key] = 1 if value else 0
        return
    handler = getattr(options, "opt_" + option.key.replace("-", "_"))
    try:
        if option.kind in ("list", "paths"):
            for item in value:
                handler(item)
        elif option.kind == "flag":
            if value:
                handler()
        else:
            handler(value)
    except (usage.UsageError, ValueError) as e:
        raise usage.UsageError(
            "{}: {} = {}: {}".format(path, option.key, _show(value), e or "refused")
        )



def tomlValue(value):
    """
    A default as a TOML value, or C{None} for an option not set by default.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(tomlValue(v) for v in value) + "]"
    raise TypeError("no TOML form for {!r}".format(value))

