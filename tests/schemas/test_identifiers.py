"""Identifiers: one normal form per identifier, whatever spelling a producer or a reader uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import events as ev
from schemas.identifiers import KINDS, identifier, parse, postal


@pytest.mark.parametrize(("text", "normal"), [
    ("twitter:@jan", "twitter:@jan"),
    ("Twitter:@Jan", "twitter:@jan"),
    ("twitter:jan", "twitter:@jan"),  # with or without the @
    ("twitter: @JAN ", "twitter:@jan"),
    ("email:Jan.Jansen@Example.COM", "email:jan.jansen@example.com"),
    ("whatsapp:+31 6 1234 5678", "whatsapp:+31612345678"),
    ("phone:+31 (6) 12-34.56/78", "phone:+31612345678"),
    ("phone:0031612345678", "phone:+31612345678"),  # the international 00 prefix is a +
    ("phone:06 12345678", "phone:0612345678"),  # no country to assume: only the spaces go
    ("facebook:Jan.Jansen", "facebook:jan.jansen"),
    ("loyalty_card:nl 1234 56", "loyalty_card:NL123456"),
    ("address:1234 ab-1", "address:1234AB-1"),
    ("address:1234AB-12b", "address:1234AB-12B"),
    ("other: Case Sensitive ", "other:Case Sensitive"),
])
def test_spellings_of_one_identifier_normalise_to_one(text, normal):
    assert parse(text) == normal
    assert parse(normal) == normal  # the normal form is a fixed point


@pytest.mark.parametrize(("text", "problem"), [
    ("cust-1001", "not an identifier"),
    ("fax:+3112345", "unknown identifier kind 'fax'"),
    ("twitter:@", "empty twitter identifier"),
    ("email:   ", "empty email identifier"),
    ("crm:1001", "unknown identifier kind 'crm'"),  # a customer id with a colon is no identifier
])
def test_text_that_is_no_identifier_is_refused_with_the_reason(text, problem):
    with pytest.raises(ValueError, match=problem):
        parse(text)


def test_every_kind_a_link_event_may_name_is_an_identifier_kind():
    assert set(KINDS) == {*ev.IdentityLinked.model_fields["kind"].annotation.__args__, "address"}
    assert ev.IdentityUnlinked.model_fields["kind"].annotation == ev.IdentityLinked.model_fields["kind"].annotation


def test_a_postal_address_is_its_postcode_and_house_number():
    home = ev.PostalAddress(street="Dorpsstraat", house_number="1", postcode="1234 ab", city="Utrecht")
    misspelt = ev.PostalAddress(street="Dorpstraat", house_number=" 1", postcode="1234AB", city="UTRECHT")
    assert postal(home) == postal(misspelt) == "address:1234AB-1"
    assert postal(home.model_copy(update={"house_number": "1a"})) == "address:1234AB-1A"


@given(kind=st.sampled_from(KINDS), value=st.text(min_size=1, max_size=60))
def test_normalising_is_idempotent(kind, value):
    try:
        normal = identifier(kind, value)
    except ValueError:
        return  # a value of nothing but spaces or separators
    assert parse(normal) == normal
