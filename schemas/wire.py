"""The hot-path decoder: Kafka record -> msgspec ``Struct`` event, a drop-in for ``codec.decode`` in the worker.

``codec.decode`` (pydantic) stays the authority on what a valid event is. This module is a faster route to the same
answer, built so that it cannot disagree with it:

* **Generated, not written.** Every struct is generated at import from the pydantic models (the envelope from
  ``typed_event``, the payloads from ``schemas.registry.BY_TYPE``, nested models such as ``PostalAddress``), with
  the constraints pydantic enforces translated to ``msgspec.Meta`` (lengths, bounds, ``Literal``, the same enum
  classes, optional fields and defaults, ``extra="forbid"``). A model change is a struct change on the next import.
* **A subset, never a superset.** The fast path accepts only input it can prove pydantic accepts *with the same
  result*; anything else (an error, or merely something unusual: a number where text was expected, a timestamp
  with nanoseconds, a non-UTF-8 tracing header) goes to ``codec.decode``, whose event is then converted with
  ``from_model`` or whose ``DecodeError`` (with pydantic's reason) is raised. So accept/reject behaviour and
  reasons are the codec's by construction; the fast path only decides how fast the answer comes.
* **What msgspec cannot express** is checked after decoding by small parsers and checks:

  - ``Decimal`` (``max_digits``/``decimal_places``): only a plain decimal *string* is taken (``"129.50"``); JSON
    numbers go to pydantic, which sees them as orjson floats (``129.50`` becomes ``Decimal("129.5")``). A payload's
    own Decimal fields are decoded as text and parsed right after decoding (``_finish``); nested ones (none yet)
    through ``_dec_hook``.
  - datetimes: msgspec rounds fractions beyond microseconds, pydantic truncates them, so such text goes to
    pydantic. The envelope's ``time`` is decoded as text and parsed right after decoding (and converted to UTC, as
    ``Event._utc`` does); the datetimes inside derived payloads go through ``_dec_hook``.
  - integers: orjson turns integers outside 64 bits into floats (which pydantic then rounds), msgspec keeps them
    exact, so only int64 is taken.
  - validators: each one the fast path re-implements is listed in ``_HANDLED_VALIDATORS`` (the envelope's UTC
    conversion, FeedbackGiven's score-on-scale). A payload with any other validator, an unknown constraint or
    model option is decoded by pydantic only: it is listed in ``SLOW_TYPES`` with the reason (the tests insist
    that this stays empty). A field type that cannot be represented at all fails the import.
  - upcasting runs the very upcasters of ``schemas.upcasters`` on the JSON form of the payload.

Binary mode is decoded like structured mode: the ce_* headers are written into a JSON envelope (a template per list
of header names) and decoded with the same decoder; the value is decoded with its type's payload decoder.

HTTP ingest uses it too: ``decode_http`` validates the events of a structured or batch request as
``codec.from_http`` does (not upcast: ingest publishes events as sent), or leaves the whole request to it.

Public interface: ``decode_fast(value, headers) -> WireEvent``, ``decode_http(texts) -> list[WireEvent] | None``,
``data_json(event) -> str``, ``from_model(event) -> WireEvent``, and the generated types (``EVENTS``, ``PAYLOADS``,
``STRUCT_OF``).
"""

import operator
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin

import annotated_types as at
import msgspec
import orjson
from pydantic import AwareDatetime, BaseModel, TypeAdapter

from schemas import codec
from schemas.codec import MAX_RECORD_BYTES, STRUCTURED_CONTENT_TYPE
from schemas.envelope import Event, schema_urn, typed_event
from schemas.events import FEEDBACK_SCALE, Payload
from schemas.registry import BY_TYPE
from schemas.upcasters import UPCASTERS

__all__ = ["WireEvent", "WirePayload", "WireModel", "decode_fast", "decode_http", "data_json", "from_model", "EVENTS",
           "PAYLOADS", "STRUCT_OF", "SLOW_TYPES"]


# --- base classes ---------------------------------------------------------------------------------------------------
# frozen: like the pydantic models (extra="forbid", frozen=True). kw_only: keeps pydantic's field order (the order of
# data_json's keys) even where a required field follows one with a default. gc=False: these structs hold only
# strings, numbers, enums, datetimes and other such structs, so they cannot form reference cycles; leaving them out
# of the garbage collector makes decoding cheaper.
class WireModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Base of the generated structs of nested models (``PostalAddress``, ``ToldValue``)."""

    model: ClassVar[type[BaseModel]]  # the pydantic model it mirrors


class WirePayload(WireModel, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Base of the generated payload structs; ``name`` and ``version`` as on ``schemas.events.Payload``."""

    model: ClassVar[type[Payload]]
    name: ClassVar[str]
    version: ClassVar[int]

    @classmethod
    def type_name(cls) -> str:
        return cls.model.type_name()


class WireEvent(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False, tag_field="type"):
    """Base of the generated envelope structs, one per CloudEvents type.

    The struct's tag is the ``type`` attribute, so a whole structured-mode record decodes in one pass into the
    struct of its type. Offers the attributes projections use on ``schemas.envelope.Event``.
    """

    type: ClassVar[str]  # the tag, e.g. "omnitrail.MailReturned.v1"
    name: ClassVar[str]  # the payload's name without version, e.g. "MailReturned"


# --- what msgspec cannot check itself: parsed by ``_dec_hook`` ------------------------------------------------------
# A field msgspec must not decode on its own is annotated with a marker class; msgspec then hands the raw JSON value
# (or header text) to ``_dec_hook``, which parses it with the function registered here or raises ValueError, which
# msgspec reports as a ValidationError and the record goes to pydantic.
_PARSERS: dict[type, Callable[[Any], Any]] = {}


class _Marker(type):
    """Metaclass of the markers. msgspec checks a dec_hook's result with isinstance against the annotated type;
    a marker's values are plain ``datetime``/``Decimal`` objects, so its isinstance answers for that type."""

    produces: type

    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, cls.produces)


def _dec_hook(tp: type, obj: Any) -> Any:
    try:
        parse = _PARSERS[tp]
    except KeyError:
        raise NotImplementedError(f"no wire parser for {tp!r}") from None
    return parse(obj)


_convert = msgspec.convert
_force_setattr = msgspec.structs.force_setattr
_TOO_FINE = re.compile(r"\.[0-9]{7}").search  # msgspec rounds a fraction beyond microseconds; pydantic truncates


class _Datetime(metaclass=_Marker):
    """Marker: a ``datetime`` (naive allowed), from RFC 3339 text only (pydantic also takes unix timestamps)."""

    produces = datetime


class _AwareDatetime(_Datetime):
    """Marker: an ``AwareDatetime``."""


def _parse_datetime(obj: Any) -> datetime:
    if obj.__class__ is not str or _TOO_FINE(obj):
        raise ValueError("left to pydantic")
    return _convert(obj, datetime)


def _parse_aware(obj: Any) -> datetime:
    t = _parse_datetime(obj)
    if t.tzinfo is None:
        raise ValueError("naive")
    return t


_PARSERS.update({_Datetime: _parse_datetime, _AwareDatetime: _parse_aware})


def _decimal_parser(max_digits: int | None, decimal_places: int | None, bounds: dict[str, Any]) -> Callable:
    """A parser taking exactly the decimal strings pydantic accepts under these constraints (or fewer).

    Only plain decimal text: optional minus, no leading zeros, no exponent, whitespace or underscores (pydantic takes
    those too, but they are not worth a fast path); for such text pydantic's value is exactly ``Decimal(text)``. JSON
    numbers are not taken: pydantic sees the float orjson made of them (129.50 becomes Decimal("129.5")). The digit
    limits are in the regular expression; pydantic counts digits without trailing zeros, so counting them all is
    stricter.
    """
    fraction = (r"(?:\.[0-9]+)?" if decimal_places is None else "" if decimal_places == 0
                else rf"(?:\.[0-9]{{1,{decimal_places}}})?")
    if max_digits is None or decimal_places is None:
        number = rf"(?:0|[1-9][0-9]*){fraction}"
    elif max_digits > decimal_places:  # pydantic: at most max_digits - decimal_places digits before the point
        number = rf"(?:0|[1-9][0-9]{{0,{max_digits - decimal_places - 1}}}){fraction}"
    else:  # none before the point, and pydantic counts a bare 0 as one
        number = rf"0\.[0-9]{{1,{decimal_places}}}"
    match = re.compile(rf"-?{number}").fullmatch  # [0-9], not \d: only ASCII digits
    count_digits = max_digits is not None and decimal_places is None
    ge, gt, le, lt = (bounds.get(k) for k in ("ge", "gt", "le", "lt"))

    def parse(obj: Any) -> Decimal:
        if obj.__class__ is not str or match(obj) is None:
            raise ValueError("left to pydantic")
        if count_digits:
            whole_part, _, fraction_part = obj.lstrip("-").partition(".")
            if (0 if whole_part == "0" and fraction_part else len(whole_part)) + len(fraction_part) > max_digits:
                raise ValueError("too many digits")
        value = Decimal(obj)
        if (ge is not None and not value >= ge) or (gt is not None and not value > gt) or \
                (le is not None and not value <= le) or (lt is not None and not value < lt):
            raise ValueError("out of bounds")
        return value

    return parse


# --- generating structs from the pydantic models --------------------------------------------------------------------
class Unrepresentable(TypeError):
    """A model uses a field type or serialisation feature this module cannot mirror: extend it (import fails)."""


class _Slow(Exception):
    """A model can be held in a struct, but the fast path cannot check it like pydantic does (see SLOW_TYPES)."""


_INT64 = (-(2**63), 2**63 - 1)
_LENGTHS = {at.MinLen: "min_length", at.MaxLen: "max_length"}
_BOUNDS = {at.Ge: "ge", at.Gt: "gt", at.Le: "le", at.Lt: "lt"}
_MODEL_CONFIG_OK = {"frozen", "extra", "title"}  # model options that do not change validation or dumping
# Validators the fast path re-implements, by the validator function's qualified name: name -> what does it here.
# A check function takes the decoded payload struct and says whether pydantic's validator would pass it.
_HANDLED_VALIDATORS: dict[str, Callable | str] = {}


def _register_check(validator: str):
    def register(check: Callable) -> Callable:
        _HANDLED_VALIDATORS[validator] = check
        return check
    return register


@_register_check("schemas.events.FeedbackGiven._score_on_scale")
def _score_on_scale(data) -> bool:
    low, high = FEEDBACK_SCALE[data.metric]
    return low <= data.score <= high


_HANDLED_VALIDATORS["schemas.envelope.Event._utc"] = "the envelope's time is converted in _fast_decode"


class _FieldConstraints:
    """pydantic field metadata sorted into what msgspec can check and what a Decimal parser checks."""

    def __init__(self, where: str, metadata: Iterable[Any]):
        self.where = where
        self.lengths: dict[str, int] = {}
        self.bounds: dict[str, Any] = {}
        self.decimal: dict[str, int] = {}
        for m in metadata:
            if type(m) in _LENGTHS:
                self.lengths[_LENGTHS[type(m)]] = getattr(m, _LENGTHS[type(m)])
            elif type(m) in _BOUNDS:
                self.bounds[_BOUNDS[type(m)]] = getattr(m, _BOUNDS[type(m)])
            elif type(m).__name__ == "_PydanticGeneralMetadata" and set(vars(m)) <= {"max_digits", "decimal_places"}:
                self.decimal.update(vars(m))
            else:  # pattern, multiple_of, strict, ...: not translated (regex dialects differ, for one)
                raise _Slow(f"{where}: constraint {m!r} is not translated to msgspec")

    def only(self, *kinds: str) -> None:
        used = {"lengths": self.lengths, "bounds": self.bounds, "decimal": self.decimal}
        if any(used[k] for k in used if k not in kinds):
            raise _Slow(f"{self.where}: constraints {self.lengths | self.bounds | self.decimal} do not apply here")


STRUCT_OF: dict[type[BaseModel], type[WireModel]] = {}  # pydantic model -> its struct
_SLOW_OF: dict[type[BaseModel], list[str]] = {}  # pydantic model -> why its struct cannot be checked fast (nested too)
SLOW_TYPES: dict[str, str] = {}  # CloudEvents type -> why pydantic decodes it alone


def _wire_type(annotation: Any, c: _FieldConstraints, slow: list[str]) -> Any:
    """The msgspec annotation for a pydantic field annotation plus its constraints."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = get_args(annotation)
        if len(args) != 2 or type(None) not in args:
            raise Unrepresentable(f"{c.where}: only X | None unions are mirrored, not {annotation!r}")
        inner = next(a for a in args if a is not type(None))
        return _wire_type(inner, c, slow) | None  # pydantic applies the constraints to the non-None member
    if annotation is str:
        c.only("lengths")
        return Annotated[str, msgspec.Meta(**c.lengths)] if c.lengths else str
    if annotation is bool:
        c.only()
        return bool
    if annotation is int:
        c.only("bounds")
        # orjson makes floats of integers beyond 64 bits (pydantic then rounds them): leave those to pydantic.
        bounds = {"ge": _INT64[0], "le": _INT64[1]} | c.bounds
        return Annotated[int, msgspec.Meta(**bounds)]
    if annotation is Decimal:
        marker = _Marker(f"_Decimal_{len(_PARSERS)}", (), {"__doc__": f"Marker: the Decimal of {c.where}.",
                                                            "produces": Decimal})
        _PARSERS[marker] = _decimal_parser_for(c)
        return marker
    if annotation is datetime or annotation is AwareDatetime:
        c.only()
        return _Datetime if annotation is datetime else _AwareDatetime
    if origin is Literal:
        c.only()
        if not all(type(a) is str for a in get_args(annotation)):
            raise Unrepresentable(f"{c.where}: only Literal of strings is mirrored, not {annotation!r}")
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        c.only()
        if not all(type(m.value) is str for m in annotation):
            raise Unrepresentable(f"{c.where}: only enums of strings are mirrored, not {annotation!r}")
        return annotation  # the same enum class: msgspec decodes a value into its member
    if origin is list:
        c.only("lengths")
        (item,) = get_args(annotation)
        inner = _wire_type(item, _FieldConstraints(f"{c.where}[]", ()), slow)
        return Annotated[list[inner], msgspec.Meta(**c.lengths)] if c.lengths else list[inner]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        c.only()
        return _struct_for(annotation, WireModel, slow)
    raise Unrepresentable(f"{c.where}: field type {annotation!r} is not mirrored in schemas/wire.py")


def _public_methods(model: type[BaseModel]) -> dict[str, Any]:
    """Methods and properties the model defines itself (``PostalAddress.one_line``), copied onto its struct."""
    out: dict[str, Any] = {}
    for cls in reversed(model.__mro__[:model.__mro__.index(BaseModel)]):
        for attr, value in vars(cls).items():
            if not attr.startswith("_") and isinstance(value, (types.FunctionType, property)):
                out[attr] = value
    return out


def _model_checks(model: type[BaseModel], slow: list[str]) -> list[Callable]:
    """The hand-written checks of the model's validators; an unknown validator makes its types slow."""
    decorators = model.__pydantic_decorators__
    if decorators.field_serializers or decorators.model_serializers or decorators.computed_fields:
        raise Unrepresentable(f"{model.__name__}: serializers/computed fields would change data_json")
    checks = []
    for kind in ("validators", "field_validators", "root_validators", "model_validators"):
        for decorator in getattr(decorators, kind).values():
            func = getattr(decorator.func, "__func__", decorator.func)
            qualname = f"{func.__module__}.{func.__qualname__}"
            handled = _HANDLED_VALIDATORS.get(qualname)
            if handled is None:
                slow.append(f"{model.__name__}: validator {qualname} has no fast-path check")
            elif callable(handled):
                checks.append(handled)
    return checks


# payload struct -> what to run on its decoded payload: conversions of fields decoded as text, then the checks of
# validators. Each takes the payload struct and returns False (or raises) when pydantic would not accept it.
_CHECKS: dict[type[WireModel], list[Callable]] = {}


def _decimal_parser_for(c: "_FieldConstraints") -> Callable:
    c.only("bounds", "decimal")
    return _decimal_parser(c.decimal.get("max_digits"), c.decimal.get("decimal_places"), c.bounds)


def _field_conversion(name: str, parse: Callable) -> Callable:
    def convert(data) -> bool:
        _force_setattr(data, name, parse(getattr(data, name)))  # the struct is new and not shared yet
        return True
    return convert


def _struct_for(model: type[BaseModel], base: type[WireModel], slow: list[str],
                exclude: frozenset[str] = frozenset(), overrides: Mapping[str, Any] | None = None,
                name: str | None = None, namespace: Mapping[str, Any] | None = None, **config: Any) -> type:
    """The struct mirroring ``model``; appends to ``slow`` what the fast path cannot check like pydantic does."""
    if model in STRUCT_OF and not overrides and not config:
        slow.extend(_SLOW_OF[model])  # a nested model shared by several payloads makes each of them slow
        return STRUCT_OF[model]
    outer, slow = slow, []
    extra = model.model_config.get("extra", "ignore")
    if extra == "allow":
        raise Unrepresentable(f"{model.__name__}: extra='allow' keeps unknown fields, a struct cannot")
    unknown = set(model.model_config) - _MODEL_CONFIG_OK
    if unknown:
        slow.append(f"{model.__name__}: model options {sorted(unknown)} are not mirrored")
    fields, conversions = [], []
    for field_name, info in model.model_fields.items():
        if field_name in exclude:
            continue
        if info.alias not in (None, field_name) or info.validation_alias or info.serialization_alias or info.exclude:
            raise Unrepresentable(f"{model.__name__}.{field_name}: aliases/exclusion are not mirrored")
        if overrides and field_name in overrides:
            wire = overrides[field_name]
        elif base is WirePayload and info.annotation is Decimal:
            # A payload's own Decimal field (an amount) is decoded as text and parsed after decoding, in _finish:
            # cheaper than a _dec_hook marker, which costs two Python calls inside msgspec.
            try:
                parse = _decimal_parser_for(_FieldConstraints(f"{model.__name__}.{field_name}", info.metadata))
                conversions.append(_field_conversion(field_name, parse))
                wire = str
            except _Slow as exc:
                slow.append(str(exc))
                wire = Any
        else:
            try:
                wire = _wire_type(info.annotation, _FieldConstraints(f"{model.__name__}.{field_name}", info.metadata),
                                  slow)
            except _Slow as exc:
                slow.append(str(exc))
                wire = Any  # the struct still holds what pydantic decoded (from_model), it just checks nothing
        if info.is_required():
            fields.append((field_name, wire))
        elif info.default_factory is not None:
            fields.append((field_name, wire, msgspec.field(default_factory=info.default_factory)))
        else:
            fields.append((field_name, wire, info.default))
    checks = _model_checks(model, slow)
    if checks and base is WireModel:  # _finish runs the checks of the payload only
        slow.append(f"{model.__name__}: the checks of a nested model's validators are not run")
    attrs = {"__doc__": model.__doc__, "model": model, **_public_methods(model), **(namespace or {})}
    if issubclass(model, Payload):
        attrs.update(name=model.name, version=model.version)
    struct = msgspec.defstruct(name or model.__name__, fields, bases=(base,), module=__name__, namespace=attrs,
                               frozen=True, kw_only=True, forbid_unknown_fields=(extra == "forbid"), gc=False,
                               **config)
    if conversions or checks:
        _CHECKS[struct] = conversions + checks  # conversions first: the checks see the parsed values
    if not overrides and not config:
        STRUCT_OF[model], _SLOW_OF[model] = struct, slow
    outer.extend(slow)
    return struct


PAYLOADS: dict[str, type[WirePayload]] = {}  # CloudEvents type -> payload struct
EVENTS: dict[str, type[WireEvent]] = {}      # CloudEvents type -> envelope struct


def _generate() -> None:
    for type_name, payload in BY_TYPE.items():
        slow: list[str] = []
        data = _struct_for(payload, WirePayload, slow)
        model = typed_event(type_name)
        if model.model_fields["time"].annotation is not AwareDatetime or model.model_fields["time"].metadata:
            raise Unrepresentable("Event.time is no longer a plain AwareDatetime: revisit _fast_decode")
        # The envelope's methods come along (Event.name: ``type(self.data).name``); "type" is the struct's tag.
        # ``time`` is decoded as text and replaced by its datetime right after decoding, and ``data`` may be None
        # while a binary-mode record is decoded (both: see ``_fast_decode``).
        EVENTS[type_name] = _struct_for(model, WireEvent, slow, exclude=frozenset({"type"}),
                                        overrides={"data": data | None, "time": str}, name=model.__name__,
                                        namespace={"type": type_name}, tag=type_name)
        PAYLOADS[type_name] = data
        if slow:
            SLOW_TYPES[type_name] = "; ".join(dict.fromkeys(slow))


_generate()

# One decoder for a whole structured-mode record: msgspec picks the struct by the "type" member. Slow types are
# left out, so their records miss here and go to pydantic.
_FAST_EVENTS = tuple(cls for t, cls in EVENTS.items() if t not in SLOW_TYPES)
_STRUCTURED = msgspec.json.Decoder(Union[_FAST_EVENTS], dec_hook=_dec_hook)  # type: ignore[valid-type]
# Binary mode: the value is only the payload, decoded with its type's decoder (the type comes from ce_type).
_DATA_DECODERS = {cls.type: msgspec.json.Decoder(PAYLOADS[cls.type], dec_hook=_dec_hook) for cls in _FAST_EVENTS}


# --- decoding -------------------------------------------------------------------------------------------------------
def _upcaster(source: str) -> Callable[[WireEvent], WireEvent]:
    """The fast form of ``schemas.upcasters.upcast`` for one step: the same pure function on the payload's JSON."""
    target, convert = UPCASTERS[source]
    target_event, target_data = EVENTS[target], PAYLOADS[target]
    keep = [f for f in target_event.__struct_fields__ if f not in ("data", "dataschema")]

    def upcast(event: WireEvent) -> WireEvent:
        # to_builtins gives what pydantic's model_dump(mode="json") gives (data_json relies on the same).
        data = _convert(convert(msgspec.to_builtins(event.data)), target_data, dec_hook=_dec_hook)
        return target_event(**{f: getattr(event, f) for f in keep}, dataschema=schema_urn(target), data=data)

    return upcast


_UPCAST = {source: _upcaster(source) for source in UPCASTERS}


def _checked(event: WireEvent) -> bool:
    """Run the checks msgspec could not do on the payload (conversions first); False: leave it to pydantic."""
    for check in _CHECKS.get(event.data.__class__, ()):
        if not check(event.data):
            return False
    return True


def _finish(event: WireEvent) -> WireEvent | None:
    """Run the checks msgspec could not do and upcast to the latest version; None: leave it to pydantic."""
    while True:
        if not _checked(event):
            return None
        upcast = _UPCAST.get(event.type)
        if upcast is None:
            return event
        event = upcast(event)
        if event.type in SLOW_TYPES:
            return None


_NEEDS_FINISH = frozenset(t for t in EVENTS if t in UPCASTERS or PAYLOADS[t] in _CHECKS)


# Binary mode, read by C code alone. The envelope is in the ce_* headers, so the fast path writes them into a JSON
# document and decodes that with the structured-mode decoder: {"id":"<ce_id>",...,"data":null}. How to write it is
# worked out once per list of header names (a producer sends the same names on every record) and kept as a plan:
#
# * ``template``: the document with a %b for each ce_* value, and the codec's datacontenttype; None when there are no
#   ce_* headers. The codec's rules: names are case-insensitive, the last of equal names wins (as in the JSON), and
#   ce_data/ce_datacontenttype are overridden (left out here). Other headers (tracing, say) are never decoded, as
#   the codec ignores them when they are not UTF-8.
# * ``pick``: selects the ce_* values from the record's header values (None: all of them, in order).
# * ``quotes``: the number of '"' in a document whose values hold none: a value with a '"' or a '\' cannot be put in
#   JSON as it is, so such a record is left to the codec. msgspec itself rejects control characters and invalid UTF-8.
# * ``content_type``: the position of the content-type header (None: there is none); ``specversion``: whether there
#   is a ce_specversion header (it decides the mode, with content-type).
# * ``utf8_structured``/``utf8_binary``: select the values the codec decodes (so rejects when they are not UTF-8)
#   that the fast path does not otherwise read in that mode: in structured mode every ce_* and any earlier
#   content-type, in binary mode ce_data, ce_datacontenttype and any earlier content-type. None: there are none.
#
# The payload (the record's value) is decoded on its own and set into ``data`` (the struct takes None for that
# moment only: a structured record with "data": null is rejected below, as pydantic does).
class _Plan(typing.NamedTuple):
    template: bytes | None
    pick: Callable | None
    quotes: int
    content_type: int | None
    specversion: bool
    utf8_structured: Callable | None
    utf8_binary: Callable | None


def _getter(positions: list[int]) -> Callable | None:
    """A function selecting these positions of a tuple, as a tuple (None: no positions)."""
    if len(positions) == 1:  # itemgetter of one index gives the item, not a 1-tuple
        return (lambda i: lambda values: (values[i],))(positions[0])
    return operator.itemgetter(*positions) if positions else None


_PLANS: dict[tuple, _Plan | None] = {}
_CONTENT_TYPES: dict[bytes, str] = {}  # content-type header value -> its media type, as the codec reads it


def _plan(names: tuple) -> _Plan | None:
    members, positions, content_types, overridden, ce = [], [], [], [], []
    for i, name in enumerate(names):
        name = name.lower()
        if name.startswith("ce_"):
            ce.append(i)
            if name[3:] in ("data", "datacontenttype"):
                overridden.append(i)
            else:
                members.append(orjson.dumps(name[3:]).replace(b"%", b"%%") + b':"%b"')
                positions.append(i)
        elif name == "content-type":
            content_types.append(i)
    template = b"{" + b",".join(members + [b'"datacontenttype":"application/json","data":null}']) if members else None
    if template is not None and b"\\" in template:
        plan = None  # a header name that needs escaping in JSON: left to the codec
    else:
        plan = _Plan(template, None if positions == list(range(len(names))) else _getter(positions),
                     (template or b"").count(b'"'), content_types[-1] if content_types else None,
                     '"specversion":"%b"' in (template or b"").decode(),
                     _getter(sorted(ce + content_types[:-1])), _getter(overridden + content_types[:-1]))
    if len(_PLANS) >= 1024:  # header names are not supposed to vary per record; if they do, do not grow forever
        _PLANS.clear()
    _PLANS[names] = plan
    return plan


def _content_type(raw: bytes) -> str:
    ctype = raw.decode().split(";")[0].strip()
    if len(_CONTENT_TYPES) >= 1024:
        _CONTENT_TYPES.clear()
    _CONTENT_TYPES[raw] = ctype
    return ctype


def _utc_time(event: WireEvent) -> bool:
    """Parse the envelope's time as pydantic makes it (AwareDatetime, then Event._utc); False: leave it to pydantic.

    Every event has one, so it is not parsed through _dec_hook (two Python calls) but decoded as text and parsed
    here, with the same msgspec parser and after the same check as payload datetimes."""
    text = event.time
    if len(text) > 26 and _TOO_FINE(text):  # 7 fraction digits need 27 characters and then a zone
        return False
    time = _convert(text, datetime)
    tz = time.tzinfo
    if tz is not UTC:
        if tz is None:
            return False
        time = time.astimezone(UTC)  # can overflow at the ends of the calendar: that OverflowError -> pydantic
    _force_setattr(event, "time", time)  # the event is new, not shared yet
    return True


def _fast_decode(value: Any, headers: Any) -> WireEvent | None:
    """The event, if the fast path can vouch for it; None (or an exception) where ``codec.decode`` must decide.

    Mirrors ``codec.decode`` step by step for the records it takes: header rules, mode detection, then msgspec.
    """
    if value.__class__ is not bytes or len(value) > MAX_RECORD_BYTES:
        return None  # tombstones, oversized and unusual values: the codec words the reason
    ctype = ""
    if headers:
        names, raws = zip(*(headers if headers.__class__ is list else _header_items(headers)))
        plan = _PLANS.get(names) or _plan(names)
        if plan is None:
            return None  # header names that need escaping in JSON
        template, pick, quotes, content_type, specversion, utf8_structured, utf8_binary = plan
        if content_type is not None:
            raw = raws[content_type]
            ctype = _CONTENT_TYPES.get(raw) or _content_type(raw)  # None, text, not UTF-8: raises, the codec decides
    else:
        specversion, utf8_structured, utf8_binary = False, None, None
    if ctype == STRUCTURED_CONTENT_TYPE or (not ctype and not specversion):
        if utf8_structured is not None:
            b"\0".join(utf8_structured(raws)).decode()  # the separator keeps two halves from making one character
        event = _STRUCTURED.decode(value)
        if event.data is None:
            return None  # "data": null, which pydantic rejects
    elif ctype in ("", "application/json") and specversion:
        if utf8_binary is not None:
            b"\0".join(utf8_binary(raws)).decode()
        document = template % (raws if pick is None else pick(raws))  # a None value: TypeError
        if document.count(b'"') != quotes or b"\\" in document:
            return None  # a header value that is not JSON-safe text
        event = _STRUCTURED.decode(document)
        _force_setattr(event, "data", _DATA_DECODERS[event.type].decode(value))  # the event is new, not shared yet
    else:
        return None  # a content-type the codec rejects
    if not _utc_time(event):
        return None
    if event.type in _NEEDS_FINISH:
        return _finish(event)
    return event


def _header_items(headers: Any) -> Iterable:
    return headers.items() if isinstance(headers, Mapping) else headers


def _decode_slow(value: Any, headers: Any) -> WireEvent:
    """``codec.decode``: its event as a struct, or its rejection as a ``DecodeError``."""
    return from_model(codec.decode(value, headers))


def decode_fast(value: bytes | None,
                headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None = None) -> WireEvent:
    """The event in a Kafka record (either CloudEvents mode), or ``DecodeError`` with the reason.

    Accepts exactly what ``codec.decode`` accepts, upcasts the same way and raises ``DecodeError`` with the
    codec's reason; ``headers`` as confluent-kafka gives them (``msg.headers()``: a list of (str, bytes), or None).
    Where the codec lets an invalid record escape as another error (see ``_decode_slow``), this raises
    ``DecodeError`` too.
    """
    if headers.__class__ is not list and headers is not None and not isinstance(headers, (tuple, Mapping)):
        headers = list(headers)  # a one-shot iterable must survive the fast path for the codec to read it again
    try:
        event = _fast_decode(value, headers)
    except Exception:  # noqa: BLE001 - whatever the fast path trips on, the codec is the authority
        event = None
    return event if event is not None else _decode_slow(value, headers)


# --- the CloudEvents HTTP binding (ingest) --------------------------------------------------------------------------
def decode_http(texts: Iterable[bytes]) -> list[WireEvent] | None:
    """The events of a structured- or batch-mode HTTP request (one JSON text per event, as ``codec.split_batch``
    gives a batch), if the fast path can vouch for every one of them; None otherwise, and then ``codec.from_http``
    decides and words each refusal.

    The same structs, time rule and checks as ``decode_fast``, so it accepts only what ``codec.from_http`` accepts;
    unlike ``decode_fast`` it does not upcast, because ingest validates events and publishes them as they were sent.
    """
    events = []
    for text in texts:
        try:
            event = _STRUCTURED.decode(text)
            if event.data is None or not _utc_time(event) or not _checked(event):
                return None  # "data": null (which pydantic rejects), or a time or payload pydantic must judge
        except Exception:  # noqa: BLE001 - whatever the fast path trips on, the codec is the authority
            return None
        events.append(event)
    return events


# --- converting and rendering ---------------------------------------------------------------------------------------
def _to_wire(value: Any) -> Any:
    if isinstance(value, BaseModel):
        struct = STRUCT_OF[type(value)]
        return struct(**{f: _to_wire(getattr(value, f)) for f in struct.__struct_fields__})
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    return value


def from_model(event: Event) -> WireEvent:
    """The wire form of a pydantic event (any registered type, any version: it is not upcast)."""
    cls = EVENTS[event.type]
    return cls(**{f: _to_wire(getattr(event, f)) for f in cls.__struct_fields__})


_DATETIME_JSON = TypeAdapter(datetime).serializer


def _render_datetime(value: Any) -> Any:
    # pydantic's own rendering: it differs from msgspec's for offsets with seconds (it truncates, msgspec rounds).
    if isinstance(value, datetime):
        return _DATETIME_JSON.to_python(value, mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def data_json(event: WireEvent | Event) -> str:
    """The canonical JSON text of the event's payload, as ``orjson.dumps(data.model_dump(mode="json"))`` gives it.

    Same key order (the models' field order), Decimal as its string, enums as values, datetimes as pydantic writes
    them; strings go through orjson in both cases, so they are escaped alike. Takes pydantic events too.
    """
    if isinstance(event, BaseModel):
        return orjson.dumps(event.data.model_dump(mode="json")).decode()
    return orjson.dumps(msgspec.to_builtins(event.data, builtin_types=(datetime,)), default=_render_datetime,
                        option=orjson.OPT_PASSTHROUGH_DATETIME).decode()

