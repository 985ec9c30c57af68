"""Secret references: what config files hold instead of a secret, and how a value is read from one.

A config file, the store, a log line or a command line may carry `env:NAME`,
`keyring:service/name` or `file:PATH`, never the value itself. The value is read here, at the
moment a step needs it, and stays in memory.

Errors never echo what they were given: a user who pasted a token where a reference belongs must
not find it again in a terminal, a CI log or an error report. They name the field, the reference
(references are not secret) and what to run to fix it.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from shipyard.errors import ConfigError
from shipyard.secrets import known

Scheme = Literal["env", "keyring", "file"]
SCHEMES: tuple[Scheme, ...] = ("env", "keyring", "file")
USE = "use env:NAME, keyring:service/name or file:PATH"

# One pattern per scheme, so an error can say which part is wrong.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYRING = re.compile(r"^([^/\s]+)/(\S+)$")
_FILE = re.compile(r"^\S+$")
# Permission bits that let group or others read, write or enter: ssh refuses private keys with any.
_SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO


@dataclass(frozen=True)
class SecretRef:
    """A parsed reference; `str()` gives it back as written (safe to log: it holds no value)."""

    scheme: Scheme
    target: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"

    @property
    def keyring_entry(self) -> tuple[str, str]:
        """(service, name) of a keyring reference."""
        service, _, name = self.target.partition("/")
        return service, name


def parse_ref(text: object, field: str = "secret") -> SecretRef:
    """Parse `text` as a reference or raise a ConfigError that does not repeat it."""
    problem = reference_problem(text)
    if problem is not None:
        raise ConfigError(f"{field}: {problem}")
    scheme, _, target = str(text).partition(":")
    return SecretRef(scheme, target)  # type: ignore[arg-type]


def reference_problem(text: object) -> str | None:
    """What is wrong with `text` as a reference (None: nothing), without quoting any of it."""
    if not isinstance(text, str):
        return f"expected a reference string; {USE}"
    scheme, colon, target = text.partition(":")
    if not colon or scheme not in SCHEMES:
        # A plain value, or one with a colon in it: say nothing about its content, not even a prefix.
        return f"the value is not a reference (value not shown); {USE}"
    if scheme == "env" and not _ENV_NAME.match(target):
        return "env: needs a variable name (letters, digits, _; not starting with a digit)"
    if scheme == "keyring" and not _KEYRING.match(target):
        return "keyring: needs service/name, both without spaces"
    if scheme == "file" and not _FILE.match(target):
        return "file: needs a path without spaces"
    return None


def _check_reference(text: str) -> str:
    problem = reference_problem(text)
    if problem is not None:
        # Its own error type, so that the config loader can leave out the input it usually quotes.
        raise PydanticCustomError("secret_reference", "{problem}", {"problem": problem})
    return text


SecretReference = Annotated[str, AfterValidator(_check_reference)]
"""A config field that holds a reference: `registry_password: SecretReference | None = None`.
Its errors have type "secret_reference" and a message that does not quote the value."""


def resolve(ref: SecretRef | str, field: str = "secret", root: Path | None = None) -> str:
    """The value behind `ref`. `root` is the project folder that relative `file:` paths start from
    (default: the current directory). Empty values are refused: they can only be a mistake."""
    parsed = ref if isinstance(ref, SecretRef) else parse_ref(ref, field)
    if parsed.scheme == "env":
        value = _from_env(parsed, field)
    elif parsed.scheme == "keyring":
        value = _from_keyring(parsed, field)
    else:
        value = _from_file(parsed, field, root or Path.cwd())
    if value == "":
        raise ConfigError(f"{field}: {parsed} is empty; set a value there")
    known.remember(field, value)  # masked in everything the CLI prints from now on
    return value


def _from_env(ref: SecretRef, field: str) -> str:
    value = os.environ.get(ref.target)
    if value is None:
        raise ConfigError(f"{field}: environment variable {ref.target} is not set; export it before running")
    return value


def _from_keyring(ref: SecretRef, field: str) -> str:
    service, name = ref.keyring_entry
    try:
        import keyring
        from keyring.errors import KeyringError, NoKeyringError
    except ImportError:
        raise ConfigError(f"{field}: {ref} needs the 'keyring' package: pip install keyring") from None
    try:
        value = keyring.get_password(service, name)
    except NoKeyringError:
        raise ConfigError(
            f"{field}: {ref}: no keyring backend is available; install one (on Linux a Secret Service "
            "such as gnome-keyring or KeePassXC, or `pip install keyrings.alt`) or use env: or file:"
        ) from None
    except KeyringError as exc:  # locked collection, denied prompt, ...
        raise ConfigError(f"{field}: {ref}: the keyring refused ({type(exc).__name__}: {exc})") from None
    if value is None:
        raise ConfigError(
            f"{field}: no keyring entry {service}/{name}; add it with: keyring set {service} {name}"
        )
    return value


def _from_file(ref: SecretRef, field: str, root: Path) -> str:
    path = Path(ref.target).expanduser()
    if not path.is_absolute():
        path = root / path
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{field}: {ref}: {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{field}: {ref}: cannot read {path} ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{field}: {ref}: {path} is not a regular file")
    if os.name == "posix" and info.st_mode & _SHARED_BITS:
        raise ConfigError(
            f"{field}: {ref}: {path} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{field}: {ref}: cannot read {path} ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{field}: {ref}: {path} is not UTF-8 text") from None
    # One trailing newline is how editors and `echo` end a file, not part of the secret.
    return text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
