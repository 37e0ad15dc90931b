"""NATS-style subject matching and validation of event types and patterns."""

from __future__ import annotations

import pytest

from crosswire._subjects import compile_pattern, subject_matches, validate_pattern, validate_type


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("order.created", "order.created", True),
        ("order.created", "order.cancelled", False),
        ("order.created", "order.created.eu", False),
        ("order.created", "order", False),
        ("order.*", "order.created", True),
        ("order.*", "order", False),
        ("order.*", "order.created.eu", False),
        ("*.created", "payment.created", True),
        ("*", "order", True),
        ("*", "order.created", False),
        ("order.*.eu", "order.created.eu", True),
        ("order.*.eu", "order.created.us", False),
        ("order.>", "order.created", True),
        ("order.>", "order.created.eu", True),
        ("order.>", "order", False),
        ("order.>", "orders.created", False),
        (">", "anything.at.all", True),
        (">", "one", True),
        ("*.>", "a.b", True),
        ("*.>", "a", False),
        ("order", "order.created", False),
    ],
)
def test_matching(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "must not be empty"),
        ("order created", "whitespace"),
        ("order.\tcreated", "whitespace"),
        ("order..created", "empty token at position 2"),
        (".order", "empty token at position 1"),
        ("order.", "empty token at position 2"),
        ("order.>.eu", "'>' must be the last token"),
        ("order.cre*", "whole tokens"),
        ("order.>x", "whole tokens"),
    ],
)
def test_invalid_patterns_name_the_problem(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match="pattern") as info:
        validate_pattern(pattern)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("event_type", "message"),
    [
        ("", "must not be empty"),
        ("order created", "whitespace"),
        ("order..created", "empty token"),
        ("order.*", "wildcard"),
        ("order.>", "wildcard"),
        ("order.a*b", "wildcard"),
    ],
)
def test_invalid_types_name_the_problem(event_type: str, message: str) -> None:
    with pytest.raises(ValueError, match="event type") as info:
        validate_type(event_type)
    assert message in str(info.value)


def test_valid_names_pass_through() -> None:
    assert validate_type("com.example.order.created") == "com.example.order.created"
    assert validate_pattern("com.*.order.>") == "com.*.order.>"
    assert compile_pattern("a.*.>") == ("a", "*", ">")


def test_non_str_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="must be a str"):
        validate_type(b"order")  # type: ignore[arg-type]


def test_matching_an_invalid_pattern_raises() -> None:
    with pytest.raises(ValueError, match="'>' must be the last token"):
        subject_matches("a.>.b", "a.x.b")
