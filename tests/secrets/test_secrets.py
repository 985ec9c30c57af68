"""Secret references, resolution, the `secrets:` section and redaction, on real files, real
environment variables and a real keyring backend (keyrings.alt's PlaintextKeyring in a temp dir)."""

from __future__ import annotations

import io
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus

import keyring
import pytest
from keyring.backends import fail
from keyrings.alt.file import PlaintextKeyring
from pydantic import BaseModel, ValidationError

import shipyard.secrets.redact as redact_module
from shipyard.errors import ConfigError
from shipyard.secrets import (
    RedactingFilter,
    Redactor,
    SecretRef,
    SecretReference,
    Secrets,
    parse_ref,
    resolve,
    scan_for_values,
)
from shipyard.secrets.refs import USE

VALUE = 'tok/en "with" spaces&symbols=é'


@pytest.fixture
def plaintext_keyring(tmp_path: Path) -> Iterator[PlaintextKeyring]:
    """A real file-backed keyring in a temp dir, installed as keyring's backend for the test."""
    previous = keyring.get_keyring()
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring" / "keyring_pass.cfg")
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def secret_file(folder: Path, name: str, text: str, mode: int = 0o600) -> Path:
    path = folder / name
    path.write_text(text)
    path.chmod(mode)
    return path


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "scheme", "target"),
    [
        ("env:API_TOKEN", "env", "API_TOKEN"),
        ("keyring:shipyard/registry", "keyring", "shipyard/registry"),
        ("keyring:svc/user/with/slashes", "keyring", "svc/user/with/slashes"),
        ("file:secrets/token.txt", "file", "secrets/token.txt"),
        ("file:/abs/token", "file", "/abs/token"),
    ],
)
def test_parse_each_scheme(text: str, scheme: str, target: str) -> None:
    ref = parse_ref(text)
    assert ref == SecretRef(scheme, target)  # type: ignore[arg-type]
    assert str(ref) == text


@pytest.mark.parametrize(
    "value", ["hunter2-plain-value", "vault:kv/data/x", "sk:live:abcdef", "ENV:TOKEN", ""]
)
def test_plain_or_unknown_scheme_is_refused_without_echo(value: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_ref(value, "secrets.API")
    message = str(error.value)
    assert message.startswith("secrets.API: the value is not a reference (value not shown)")
    assert "env:NAME, keyring:service/name or file:PATH" in message
    for part in filter(None, value.split(":")):
        assert part not in message.replace("env:NAME", "").replace("file:PATH", "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env:", "env: needs a variable name"),
        ("env:9LIVES", "env: needs a variable name"),
        ("env:MY-TOKEN", "env: needs a variable name"),
        ("keyring:noslash", "keyring: needs service/name"),
        ("keyring:/name", "keyring: needs service/name"),
        ("file:", "file: needs a path"),
        ("file:a b", "file: needs a path"),
    ],
)
def test_malformed_reference_says_which_part(text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=f"^x: {expected}"):
        parse_ref(text, "x")


def test_non_string_is_refused() -> None:
    with pytest.raises(ConfigError, match="x: expected a reference string"):
        parse_ref(12345678, "x")


class _Section(BaseModel):
    password: SecretReference | None = None
    secrets: dict[str, SecretReference] = {}


def test_config_field_type_errors_do_not_quote_the_value() -> None:
    assert _Section(password="env:TOKEN", secrets={"A": "file:a"}).secrets == {"A": "file:a"}
    with pytest.raises(ValidationError) as error:
        _Section(password="hunter2-plain", secrets={"A": "env:OK", "B": "keyring:nouser"})
    problems = [(e["loc"], e["type"], e["msg"]) for e in error.value.errors()]
    assert problems == [
        (("password",), "secret_reference", "the value is not a reference (value not shown); " + USE),
        (("secrets", "B"), "secret_reference", "keyring: needs service/name, both without spaces"),
    ]


# --- env ---------------------------------------------------------------------------------------


def test_env_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_SECRET", VALUE)
    assert resolve("env:SHIPYARD_TEST_SECRET") == VALUE


def test_missing_env_var_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_TEST_ABSENT", raising=False)
    with pytest.raises(
        ConfigError, match="^secrets.API: environment variable SHIPYARD_TEST_ABSENT is not set"
    ):
        resolve("env:SHIPYARD_TEST_ABSENT", "secrets.API")


def test_empty_value_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_EMPTY", "")
    with pytest.raises(ConfigError, match="x: env:SHIPYARD_TEST_EMPTY is empty"):
        resolve("env:SHIPYARD_TEST_EMPTY", "x")


# --- file --------------------------------------------------------------------------------------


def test_file_relative_to_root_strips_one_newline(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    secret_file(tmp_path / "secrets", "token", VALUE + "\n\n")
    assert resolve("file:secrets/token", root=tmp_path) == VALUE + "\n"
    secret_file(tmp_path, "crlf", "abcd1234\r\n")
    assert resolve("file:crlf", root=tmp_path) == "abcd1234"
    secret_file(tmp_path, "bare", "  spaced  ")
    assert resolve(f"file:{tmp_path / 'bare'}", root=Path("/nonexistent")) == "  spaced  "


def test_file_readable_by_others_is_refused_with_chmod(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "token", VALUE, mode=0o644)
    with pytest.raises(ConfigError) as error:
        resolve("file:token", "secrets.API", root=tmp_path)
    assert str(error.value) == (
        f"secrets.API: file:token: {path} is accessible by group or others (mode 0644); run: chmod 600 {path}"
    )
    assert VALUE not in str(error.value)
    path.chmod(0o640)
    with pytest.raises(ConfigError, match=r"\(mode 0640\)"):
        resolve("file:token", root=tmp_path)
    path.chmod(0o400)
    assert resolve("file:token", root=tmp_path) == VALUE


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"^x: file:nope: {tmp_path / 'nope'} does not exist$"):
        resolve("file:nope", "x", root=tmp_path)
    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError, match="is not a regular file"):
        resolve("file:dir", "x", root=tmp_path)


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin"
    path.write_bytes(b"\xff\xfe\x00abc")
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        resolve("file:bin", root=tmp_path)


# --- keyring -----------------------------------------------------------------------------------


def test_keyring_reference(plaintext_keyring: PlaintextKeyring) -> None:
    keyring.set_password("shipyard-test", "registry", VALUE)
    assert resolve("keyring:shipyard-test/registry") == VALUE
    assert Path(plaintext_keyring.file_path).is_file()  # the real backend stored it


def test_missing_keyring_entry_says_how_to_add(plaintext_keyring: PlaintextKeyring) -> None:
    with pytest.raises(
        ConfigError,
        match="^x: no keyring entry shipyard-test/absent; add it with: keyring set shipyard-test absent$",
    ):
        resolve("keyring:shipyard-test/absent", "x")


def test_no_keyring_backend_is_a_clear_error() -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(
            ConfigError, match="^x: keyring:svc/name: no keyring backend is available; install"
        ):
            resolve("keyring:svc/name", "x")
    finally:
        keyring.set_keyring(previous)


def test_keyring_package_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # makes `import keyring` raise ImportError
    with pytest.raises(
        ConfigError, match="^x: keyring:svc/name needs the 'keyring' package: pip install keyring"
    ):
        resolve("keyring:svc/name", "x")


# --- the secrets: section ----------------------------------------------------------------------


def test_section_is_checked_up_front() -> None:
    with pytest.raises(ConfigError, match="^secrets.API: the value is not a reference"):
        Secrets({"API": "plain-value-here"})
    with pytest.raises(ConfigError, match="'my-token' is not a valid name"):
        Secrets({"my-token": "env:X"})
    with pytest.raises(ConfigError, match="^secrets.PATH: this name is reserved"):
        Secrets({"PATH": "env:X"})
    with pytest.raises(ConfigError, match="^secrets.MLFLOW_TRACKING_TOKEN: this name is reserved"):
        Secrets({"MLFLOW_TRACKING_TOKEN": "env:X"})


def test_env_for_step_resolves_only_what_the_step_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_A", "value-of-a")
    monkeypatch.delenv("SHIPYARD_TEST_B", raising=False)
    secret_file(tmp_path, "c", "value-of-c\n")
    secrets = Secrets({"A": "env:SHIPYARD_TEST_A", "B": "env:SHIPYARD_TEST_B", "C": "file:c"}, root=tmp_path)
    assert secrets.names == ["A", "B", "C"]
    assert secrets.env_for_step(["C", "A", "C"]) == {"C": "value-of-c", "A": "value-of-a"}
    with pytest.raises(ConfigError, match="^secrets.B: environment variable SHIPYARD_TEST_B is not set"):
        secrets.resolve_all()
    with pytest.raises(
        ConfigError, match=r"^secret D is not in the secrets: section of shipyard.yaml \(defined: A, B, C\)"
    ):
        secrets.env_for_step(["D"])
    monkeypatch.setenv("SHIPYARD_TEST_B", "value-of-b")
    assert secrets.resolve_all() == {"A": "value-of-a", "B": "value-of-b", "C": "value-of-c"}


def test_values_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_A", "value-of-a")
    secrets = Secrets({"A": "env:SHIPYARD_TEST_A"})
    secrets.resolve_all()
    assert repr(secrets) == "Secrets(A=env:SHIPYARD_TEST_A)"
    assert "value-of-a" not in repr(secrets.redactor())


def test_redactor_holds_resolved_values_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_A", "value-of-a")
    monkeypatch.setenv("SHIPYARD_TEST_B", "value-of-b")
    secrets = Secrets({"A": "env:SHIPYARD_TEST_A", "B": "env:SHIPYARD_TEST_B"})
    assert secrets.redactor().redact("value-of-a") == "value-of-a"  # nothing resolved yet
    secrets.env_for_step(["A"])
    assert secrets.redactor().redact("value-of-a value-of-b") == "*** value-of-b"


# --- redaction ---------------------------------------------------------------------------------


def test_redacts_plain_quoted_and_json_escaped() -> None:
    redactor = Redactor({"API": VALUE})
    occurrences = [
        VALUE,
        quote(VALUE, safe=""),
        quote(VALUE),
        quote_plus(VALUE),
        json.dumps(VALUE)[1:-1],
        json.dumps(VALUE, ensure_ascii=False)[1:-1],
    ]
    assert len(set(occurrences)) == 6  # the test value really has six distinct spellings
    for text in occurrences:
        assert redactor.redact(f"before {text} after") == "before *** after", text
    body = json.dumps({"password": VALUE, "url": f"https://h/x?t={quote_plus(VALUE)}"})
    assert redactor.redact(body) == '{"password": "***", "url": "https://h/x?t=***"}'
    assert redactor.contains(body) and not redactor.contains(redactor.redact(body))


def test_longest_value_masked_whole() -> None:
    redactor = Redactor(["abcd", "abcdefgh"])
    assert redactor.redact("xabcdefghx abcd abcdefg") == "x***x *** ***efg"
    assert redactor.redact("") == "" and redactor.redact("nothing") == "nothing"


def test_short_values_are_not_redacted_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="shipyard.secrets.redact"):
        redactor = Redactor({"PIN": "123", "TOKEN": "12345"})
    assert redactor.skipped == ["PIN"]
    assert redactor.redact("pin 123 token 12345") == "pin 123 token ***"
    assert [r.getMessage() for r in caplog.records] == [
        "secret PIN is shorter than 4 characters and is not redacted from logs"
    ]
    assert not Redactor({"PIN": "123"})  # nothing to redact: falsy, and redaction is the identity


def test_logging_filter_masks_message_args_and_exception() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactingFilter(Redactor({"API": VALUE})))
    logger = logging.getLogger("shipyard.test.secrets")
    logger.addHandler(handler)
    logger.propagate = False
    child = logging.getLogger("shipyard.test.secrets.child")
    try:
        logger.warning("calling with token %s", VALUE)
        child.info("child %s", quote_plus(VALUE))  # filter on the handler sees propagated records
        logger.setLevel(logging.INFO)
        child.info("child %s", quote_plus(VALUE))
        try:
            raise RuntimeError(f"server said: bad token {VALUE}")
        except RuntimeError:
            logger.exception("request failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    out = stream.getvalue()
    assert VALUE not in out and quote_plus(VALUE) not in out
    assert out.startswith("WARNING calling with token ***\nINFO child ***\nERROR request failed\nTraceback")
    assert "RuntimeError: server said: bad token ***" in out


def test_redact_file_across_chunk_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    redactor = Redactor({"API": VALUE, "OTHER": "second-secret"})
    lines = [f"line {i}: {VALUE if i % 3 else quote_plus(VALUE)} and second-secret end\n" for i in range(200)]
    text = "".join(lines) + "tail " + VALUE  # a match in the very last bytes too
    for chunk in (5, 7, 31, 1 << 20):  # smaller than, near and larger than the values
        monkeypatch.setattr(redact_module, "CHUNK", chunk)
        path = tmp_path / f"step-{chunk}.log"
        path.write_text(text)
        path.chmod(0o640)
        assert redactor.redact_file(path) == 401
        assert path.read_text() == redactor.redact(text)
        assert "second-secret" not in path.read_text() and path.read_text().endswith("tail ***")
        assert oct(path.stat().st_mode & 0o777) == oct(0o640)
    # No temporary files left beside the logs.
    assert {p.name for p in tmp_path.iterdir()} == {f"step-{c}.log" for c in (5, 7, 31, 1 << 20)}


def test_redact_file_leaves_a_clean_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "clean.log"
    path.write_bytes(b"nothing here \xff binary ok\n")
    inode = path.stat().st_ino
    assert Redactor({"API": VALUE}).redact_file(path) == 0
    assert path.stat().st_ino == inode and path.read_bytes() == b"nothing here \xff binary ok\n"


@pytest.mark.parametrize("isolated", [False, True])
def test_scan_for_values(tmp_path: Path, isolated: bool) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.json").write_text(json.dumps({"k": VALUE}))
    (tmp_path / "a" / "clean.txt").write_text("clean")
    (tmp_path / "url.log").write_text(f"GET /?t={quote(VALUE, safe='')}")
    (tmp_path / "short.txt").write_text("123")
    os.symlink(tmp_path / "a" / "b" / "deep.json", tmp_path / "link.json")  # links are not followed
    found = scan_for_values(tmp_path, [VALUE, "123"], isolated=isolated)
    assert found == [tmp_path / "a" / "b" / "deep.json", tmp_path / "url.log"]
    assert scan_for_values(tmp_path, ["not-there-at-all"], isolated=isolated) == []


def test_resolved_values_and_credential_variables_are_masked_in_output(monkeypatch, capsys):
    from shipyard.cli.common import Output, console, emit
    from shipyard.secrets import known

    monkeypatch.setenv("SHIPYARD_TEST_KNOWN", "resolved-value-789")
    monkeypatch.setenv("PGPASSWORD", "pg-pass-word")
    resolve("env:SHIPYARD_TEST_KNOWN", "secrets.TOKEN")  # resolving makes the value known
    assert known.values()["secrets.TOKEN"] == "resolved-value-789"
    assert known.mask("a resolved-value-789 b pg-pass-word c") == "a *** b *** c"
    emit({"params": {"token": "resolved-value-789", "url": "x?p=pg-pass-word"}}, Output.json)
    console.print("param token=resolved-value-789", markup=False)
    out = capsys.readouterr().out
    assert "resolved-value-789" not in out and "pg-pass-word" not in out
    assert '"token": "***"' in out and "param token=***" in out
    monkeypatch.delenv("PGPASSWORD")
    assert known.mask("pg-pass-word") == "pg-pass-word"  # a variable unset is no longer masked


def test_a_server_environment_is_an_allow_list(monkeypatch):
    from shipyard.secrets.environ import explicit_environment

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "k" * 20)
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    env = explicit_environment({"EXTRA": "1"})
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["LC_ALL"] == "C.UTF-8" and env["EXTRA"] == "1" and env["PATH"]
