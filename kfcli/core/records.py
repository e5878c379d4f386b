"""`@record`: what `@dataclass(frozen=True)` makes of a small class, without its import cost.

`dataclasses` writes each class's methods (`__init__`, `__repr__`, `__eq__`, `__hash__`,
`__setattr__`, `__delattr__`) as source text and compiles them when the module is imported:
about 0.4 ms a class on the 2-core machine, 5 ms of `kfcli account list`'s start-up for the
thirteen frozen result types on its path (issue 23's start-up budget). A record has the same
constructor (positional or keyword arguments, defaults, `field(default_factory=...)`), repr,
equality (same class, fields with `compare=True`), hash and immutability, from functions
shared by every record that read the class's field list. Type checkers see a frozen
dataclass (PEP 681's `dataclass_transform`). Use it for frozen classes without
`__post_init__`; anything else stays a dataclass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

_T = TypeVar("_T")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FrozenInstanceError(AttributeError):
    """Assigning to (or deleting) a field of a record, as dataclasses' error of that name."""


class Field:
    __slots__ = ("name", "default", "factory", "repr", "compare")

    def __init__(self, name: str, default: Any, factory: Callable[[], Any] | None,
                 repr: bool, compare: bool) -> None:  # noqa: A002 - dataclasses' name
        self.name = name
        self.default = default
        self.factory = factory
        self.repr = repr
        self.compare = compare


def field(*, default: Any = MISSING, default_factory: Callable[[], Any] | None = None,
          repr: bool = True, compare: bool = True) -> Any:  # noqa: A002
    """A field's options, as `dataclasses.field` takes them."""
    return Field("", default, default_factory, repr, compare)


if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**_options):
        return lambda decorator: decorator


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[_T]) -> type[_T]:
    """Make `cls` a frozen record of its annotated attributes (its bases' first)."""
    fields: list[Field] = list(getattr(cls, "__record_fields__", ()))
    for name in cls.__dict__.get("__annotations__", {}):
        value = cls.__dict__.get(name, MISSING)
        if isinstance(value, Field):
            value = Field(name, value.default, value.factory, value.repr, value.compare)
            if value.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, value.default)
        else:
            value = Field(name, value, None, True, True)
        at = next((i for i, f in enumerate(fields) if f.name == name), None)
        if at is None:
            fields.append(value)
        else:
            fields[at] = value
    required = [f.name for f in fields if f.default is MISSING and f.factory is None]
    if required and [f.name for f in fields[:len(required)]] != required:
        raise TypeError(f"{cls.__name__}: a field without a default follows one with a default")
    attrs: dict[str, Any] = {
        "__record_fields__": tuple(fields),
        "__match_args__": tuple(f.name for f in fields),
        "__init__": _init, "__repr__": _repr, "__eq__": _eq, "__hash__": _hash,
        "__setattr__": _frozen, "__delattr__": _frozen,
    }
    for key, value in attrs.items():
        setattr(cls, key, value)
    return cls


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    fields: tuple[Field, ...] = self.__record_fields__
    kind = type(self).__name__
    if len(args) > len(fields):
        raise TypeError(f"{kind}() takes {len(fields)} positional arguments but {len(args)} "
                        "were given")
    put = object.__setattr__
    for i, f in enumerate(fields):
        if i < len(args):
            if f.name in kwargs:
                raise TypeError(f"{kind}() got multiple values for argument {f.name!r}")
            value = args[i]
        elif f.name in kwargs:
            value = kwargs.pop(f.name)
        elif f.factory is not None:
            value = f.factory()
        elif f.default is not MISSING:
            value = f.default
        else:
            raise TypeError(f"{kind}() missing required argument: {f.name!r}")
        put(self, f.name, value)
    if kwargs:
        raise TypeError(f"{kind}() got an unexpected keyword argument {next(iter(kwargs))!r}")


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(getattr(self, f.name) for f in self.__record_fields__ if f.compare)


def _repr(self: Any) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__
                      if f.repr)
    return f"{type(self).__qualname__}({shown})"


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is self.__class__:
        return _values(self) == _values(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen(self: Any, name: str, *value: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")
