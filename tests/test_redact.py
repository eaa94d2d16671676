"""The Redactor: what "secrets never appear in output, logs, reprs or errors" rests on."""

from __future__ import annotations

import json
import threading
from urllib.parse import quote

from connector_core.redact import Redactor


def test_a_secret_that_contains_another_is_masked_whole():
    redact = Redactor(["s3cr3t", "s3cr3t-2024-rotated"])
    assert redact("old s3cr3t, new s3cr3t-2024-rotated") == "old ***, new ***"


def test_the_longer_secret_wins_whatever_order_the_secrets_were_learnt_in():
    for order in (["s3cr3t", "s3cr3t-2024-rotated"], ["s3cr3t-2024-rotated", "s3cr3t"]):
        redact = Redactor()
        for value in order:
            redact.add(value)
        assert redact("token=s3cr3t-2024-rotated") == "token=***", order


def test_every_occurrence_is_masked():
    assert Redactor(["abc123"])("abc123/abc123?x=abc123") == "***/***?x=***"


def test_strings_inside_lists_tuples_and_dicts_are_masked_at_any_depth():
    redact = Redactor(["hunter2"])
    data = {
        "message": "password hunter2 refused",
        "errors": ["first hunter2", {"detail": ["deep hunter2"]}],
        "pair": ("hunter2", 7),
        "count": 3,
    }
    assert redact(data) == {
        "message": "password *** refused",
        "errors": ["first ***", {"detail": ["deep ***"]}],
        "pair": ("***", 7),
        "count": 3,
    }


def test_container_types_are_kept():
    redact = Redactor(["hunter2"])
    assert type(redact(["hunter2"])) is list
    assert type(redact(("hunter2",))) is tuple
    assert redact([]) == [] and redact(()) == ()


def test_values_that_are_not_text_pass_through_unchanged():
    redact = Redactor(["42"])
    for value in (42, 4.2, None, True, b"42"):
        assert redact(value) == value


def test_empty_and_non_text_secrets_are_ignored():
    # An empty secret would otherwise match between every two characters.
    redact = Redactor(["", None, 1234])
    assert redact("abc 1234") == "abc 1234"
    assert repr(redact) == "Redactor(0 secret(s))"


def test_a_secret_learnt_later_is_masked_from_then_on():
    redact = Redactor(["client-secret-1"])
    assert redact("token tok-99") == "token tok-99"
    redact.add("tok-99")
    assert redact("token tok-99 for client-secret-1") == "token *** for ***"


def test_the_same_secret_added_twice_counts_once():
    redact = Redactor(["dup-secret"])
    redact.add("dup-secret", "dup-secret")
    assert repr(redact) == "Redactor(1 secret(s))"


def test_the_repr_counts_the_secrets_without_showing_them():
    redact = Redactor(["client-secret-1", "tok-99"])
    assert repr(redact) == "Redactor(2 secret(s))"
    assert "client-secret-1" not in repr(redact) and "tok-99" not in repr(redact)


def test_secrets_added_from_many_threads_are_all_kept():
    redact = Redactor()
    values = [f"token-{n:03d}-value" for n in range(200)]
    threads = [threading.Thread(target=redact.add, args=(value,)) for value in values]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert repr(redact) == "Redactor(200 secret(s))"
    assert redact(" ".join(values)) == " ".join(["***"] * 200)


def test_a_non_ascii_secret_inside_a_bytes_repr_is_masked():
    secret = "pässwörd-42"
    body = b"grant_type=client_credentials&client_secret=" + secret.encode("utf-8")
    assert Redactor([secret])(f"sent {body!r}") == "sent b'grant_type=client_credentials&client_secret=***'"


def test_a_secret_with_a_quote_is_masked_in_a_repr_that_escapes_it():
    # A string holding both quote kinds is repr'd in single quotes, escaping the secret's own.
    assert Redactor(["it's-s3cret"])(repr('say "hi" ' + "it's-s3cret")) == """'say "hi" ***'"""


def test_a_non_ascii_secret_with_quotes_is_masked_in_json_written_without_ascii_escapes():
    # json.dumps(..., ensure_ascii=False) keeps the non-ASCII letters and escapes only the quote.
    secret = 'pä"ss-wört'
    assert Redactor([secret])('{"password": "pä\\"ss-wört"}') == '{"password": "***"}'


def test_the_secrets_may_be_given_by_name():
    assert Redactor(secrets=["named-secret"])("a named-secret here") == "a *** here"


def test_a_non_ascii_secret_spelled_with_uppercase_unicode_escapes_is_masked_whole():
    # Some JSON encoders (Java's, JavaScript's) write \u00EB where Python writes \u00eb.
    assert Redactor(["sëcret-42"])('{"password": "s\\u00EBcret-42"}') == '{"password": "***"}'


def test_text_holding_only_part_of_a_secret_is_left_alone():
    # Masking a fragment would garble ordinary text and show where the secret ends.
    secrets = ["plain-s3cret", "it's-s3cret", 'say-"s3cret"', "both-'\"-s3cret", "sëcrét-\\-ünï", "tab\tsecret-ü"]
    for secret in secrets:
        redact = Redactor([secret])
        spellings = {secret, repr(secret)[1:-1], ascii(secret)[1:-1], json.dumps(secret)[1:-1],
                     json.dumps(secret, ensure_ascii=False)[1:-1], quote(secret, safe="")}
        for spelling in spellings:
            for part in (spelling[1:], spelling[:-1]):
                assert redact(f"<{part}>") == f"<{part}>", (secret, part)


def test_a_secret_of_exactly_the_minimum_length_is_masked():
    assert Redactor(["4chr"])("key 4chr, not 4ch") == "key ***, not 4ch"


def test_a_redactor_is_true_once_it_knows_a_secret():
    redact = Redactor(["abc"])  # too short to be a secret: ignored
    assert not redact
    redact.add("abcd")
    assert redact


def test_only_the_secret_is_masked_not_the_quotes_or_escapes_around_it():
    assert Redactor(["it's-s3cret"])('say "it\'s-s3cret" now') == 'say "***" now'
    # repr escapes the quote after the secret; the escape stays.
    assert Redactor(['say-"s3cret"'])(repr('say-"s3cret"' + "'s")) == "'***\\'s'"
