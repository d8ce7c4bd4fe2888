"""Hyperparameter search spaces: Optuna-style distributions, conditions, validation of requested values.

Each type mirrors a message of `protos/microlearn/v1/common.proto` field for field, and its ``to_dict()``
uses the proto field names, so ``json_format.ParseDict(space.to_dict(), common_pb2.SearchSpace())`` works.
"""

from __future__ import annotations

import difflib
import functools
import math
import numbers
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

__all__ = ["CategoricalDistribution", "Distribution", "FloatDistribution", "HyperparameterError",
           "IntDistribution", "ParameterCondition", "ParameterSpec", "SearchSpace"]

# What a hyperparameter value may be: what google.protobuf.Value carries, minus lists and structs.
Value = Union[str, int, float, bool, None]


class HyperparameterError(ValueError):
    """A requested hyperparameter is unknown, of the wrong type, out of range or inactive."""

    def __init__(self, message: str, *, parameter: str):
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self) -> tuple[Any, ...]:
        # Training runs in a child process; the error must survive the trip back.
        return functools.partial(HyperparameterError, parameter=self.parameter), (str(self),)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool) or type(value).__name__ == "bool_"  # numpy.bool_ without importing numpy


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value)


def _same(a: Value, b: Value) -> bool:
    """Equality that keeps True apart from 1 (Python's ``True == 1`` would merge them)."""
    if a is None or b is None:
        return a is None and b is None
    if _is_bool(a) or _is_bool(b):
        return _is_bool(a) and _is_bool(b) and bool(a) == bool(b)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a == b


@dataclass(frozen=True)
class IntDistribution:
    """Integers from ``low`` to ``high`` inclusive, every ``step`` (Optuna IntDistribution)."""

    low: int
    high: int
    log: bool = False
    step: int = 1
    proto_field: ClassVar[str] = "int_distribution"

    def __post_init__(self) -> None:
        if not (_is_int(self.low) and _is_int(self.high) and _is_int(self.step)):
            raise TypeError(f"IntDistribution needs integer bounds and step, got {self}")
        if self.low > self.high or self.step < 1:
            raise ValueError(f"IntDistribution needs low <= high and step >= 1, got {self}")
        if self.log and (self.low < 1 or self.step != 1):
            raise ValueError(f"a log IntDistribution needs low >= 1 and step 1, got {self}")

    def coerce(self, name: str, value: Any) -> int:
        # Protobuf's Value carries every number as a double, so 100.0 means 100.
        if _is_real(value) and not _is_int(value) and math.isfinite(value) and float(value).is_integer():
            value = int(value)
        if not _is_int(value):
            raise HyperparameterError(f"{name} must be an integer, got {value!r}", parameter=name)
        value = int(value)
        if not self.low <= value <= self.high:
            raise HyperparameterError(f"{name}={value} is out of range [{self.low}, {self.high}]", parameter=name)
        if (value - self.low) % self.step:
            raise HyperparameterError(f"{name}={value} is not {self.low} plus a multiple of {self.step}",
                                      parameter=name)
        return value

    def sample(self, rng: random.Random) -> int:
        if self.log:
            drawn = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return min(self.high, max(self.low, int(drawn)))
        return rng.randrange(self.low, self.high + 1, self.step)

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "step": self.step, "log": self.log}


@dataclass(frozen=True)
class FloatDistribution:
    """Floats from ``low`` to ``high`` inclusive; ``step`` None means continuous (Optuna FloatDistribution)."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    proto_field: ClassVar[str] = "float_distribution"

    def __post_init__(self) -> None:
        if not (_is_real(self.low) and _is_real(self.high)) or not (math.isfinite(self.low)
                                                                    and math.isfinite(self.high)):
            raise TypeError(f"FloatDistribution needs finite numeric bounds, got {self}")
        if self.low > self.high:
            raise ValueError(f"FloatDistribution needs low <= high, got {self}")
        if self.step is not None and not (_is_real(self.step) and self.step > 0):
            raise ValueError(f"FloatDistribution step must be positive or None, got {self}")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError(f"a log FloatDistribution needs low > 0 and no step, got {self}")

    def coerce(self, name: str, value: Any) -> float:
        if not _is_real(value):
            raise HyperparameterError(f"{name} must be a number, got {value!r}", parameter=name)
        value = float(value)
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise HyperparameterError(f"{name}={value!r} is out of range [{self.low!r}, {self.high!r}]",
                                      parameter=name)
        if self.step is not None:
            steps = (value - self.low) / self.step
            if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
                raise HyperparameterError(f"{name}={value!r} is not {self.low!r} plus a multiple of {self.step!r}",
                                          parameter=name)
        return value

    def sample(self, rng: random.Random) -> float:
        if self.log:
            return min(self.high, max(self.low, math.exp(rng.uniform(math.log(self.low), math.log(self.high)))))
        if self.step is not None:
            return self.low + self.step * rng.randint(0, int((self.high - self.low) / self.step + 1e-9))
        return rng.uniform(self.low, self.high)

    def to_dict(self) -> dict[str, Any]:
        # The proto spells "continuous" as step 0.
        return {"low": self.low, "high": self.high, "step": self.step or 0.0, "log": self.log}


@dataclass(frozen=True)
class CategoricalDistribution:
    """One of a fixed tuple of strings, numbers, booleans or None (Optuna CategoricalDistribution)."""

    choices: tuple[Value, ...]
    proto_field: ClassVar[str] = "categorical_distribution"

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise ValueError("CategoricalDistribution needs at least one choice")
        for choice in self.choices:
            if not (choice is None or isinstance(choice, (str, bool)) or _is_real(choice)):
                raise TypeError(f"choice {choice!r} is not a string, number, boolean or None")

    def coerce(self, name: str, value: Any) -> Value:
        for choice in self.choices:
            if _same(choice, value):
                return choice  # the declared spelling: 3 for a requested 3.0
        raise HyperparameterError(f"{name} must be one of {list(self.choices)!r}, got {value!r}", parameter=name)

    def sample(self, rng: random.Random) -> Value:
        return rng.choice(self.choices)

    def to_dict(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


Distribution = Union[IntDistribution, FloatDistribution, CategoricalDistribution]
_DISTRIBUTIONS: dict[str, type] = {d.proto_field: d for d in (IntDistribution, FloatDistribution,
                                                              CategoricalDistribution)}


def _distribution_from_dict(key: str, data: Mapping[str, Any]) -> Distribution:
    if key == "categorical_distribution":
        return CategoricalDistribution(tuple(data["choices"]))
    if key == "int_distribution":
        return IntDistribution(int(data["low"]), int(data["high"]), bool(data.get("log", False)),
                               int(data.get("step") or 1))
    return FloatDistribution(float(data["low"]), float(data["high"]), bool(data.get("log", False)),
                             float(data["step"]) if data.get("step") else None)


@dataclass(frozen=True)
class ParameterCondition:
    """The parameter is active only when ``parameter`` (declared earlier) took one of ``values``."""

    parameter: str
    values: tuple[Value, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))

    def holds(self, params: Mapping[str, Any]) -> bool:
        return self.parameter in params and any(_same(params[self.parameter], v) for v in self.values)

    def to_dict(self) -> dict[str, Any]:
        return {"parameter": self.parameter, "values": list(self.values)}


@dataclass(frozen=True)
class ParameterSpec:
    """One tunable hyperparameter: its distribution, its default and, optionally, when it applies."""

    name: str
    distribution: Distribution
    default: Value
    description: str = ""
    condition: ParameterCondition | None = None

    def __post_init__(self) -> None:
        # A default outside its own distribution is a bug in the estimator's declaration.
        object.__setattr__(self, "default", self.distribution.coerce(self.name, self.default))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, self.distribution.proto_field: self.distribution.to_dict(),
                               "default_value": self.default, "description": self.description}
        if self.condition is not None:
            out["condition"] = self.condition.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParameterSpec:
        keys = [k for k in _DISTRIBUTIONS if k in data]
        if len(keys) != 1:
            raise ValueError(f"parameter {data.get('name')!r} needs exactly one of {sorted(_DISTRIBUTIONS)}")
        cond = data.get("condition")
        return cls(str(data["name"]), _distribution_from_dict(keys[0], data[keys[0]]), data.get("default_value"),
                   str(data.get("description", "")),
                   ParameterCondition(cond["parameter"], tuple(cond.get("values", ()))) if cond else None)


@dataclass(frozen=True)
class SearchSpace:
    """The hyperparameters a search explores for one estimator, in declaration order."""

    parameters: tuple[ParameterSpec, ...] = ()
    _by_name: dict[str, ParameterSpec] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parameters", tuple(self.parameters))
        by_name: dict[str, ParameterSpec] = {}
        for spec in self.parameters:
            if spec.name in by_name:
                raise ValueError(f"parameter {spec.name!r} is declared twice")
            if spec.condition is not None:
                parent = by_name.get(spec.condition.parameter)
                if parent is None:
                    raise ValueError(f"{spec.name!r} depends on {spec.condition.parameter!r}, "
                                     "which must be declared before it")
                for value in spec.condition.values:
                    parent.distribution.coerce(parent.name, value)
            by_name[spec.name] = spec
        object.__setattr__(self, "_by_name", by_name)

    def __iter__(self) -> Iterator[ParameterSpec]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> ParameterSpec:
        return self._by_name[name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def defaults(self) -> dict[str, Value]:
        """The default of every parameter that is active under the other defaults."""
        return self.with_defaults({})

    def with_defaults(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` (taken as already valid) completed with defaults, parameters inactive under them dropped."""
        out: dict[str, Any] = {}
        for spec in self.parameters:
            if spec.condition is None or spec.condition.holds(out):
                out[spec.name] = params.get(spec.name, spec.default)
        return out

    def validate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check requested values and return the complete set (defaults filled in, inactive ones left out).

        Raises HyperparameterError naming the first offending parameter: unknown (with a did-you-mean),
        wrong type, out of range, or set although its condition does not hold.
        """
        if not isinstance(params, Mapping):
            raise TypeError(f"hyperparameters must be a mapping, got {type(params).__name__}")
        for name in params:
            if name not in self._by_name:
                raise HyperparameterError(self._unknown_message(str(name)), parameter=str(name))
        given = {name: self._by_name[name].distribution.coerce(name, value) for name, value in params.items()}
        out: dict[str, Any] = {}
        for spec in self.parameters:
            cond = spec.condition
            if cond is not None and not cond.holds(out):
                if spec.name in given:
                    now = repr(out[cond.parameter]) if cond.parameter in out else "inactive"
                    raise HyperparameterError(
                        f"{spec.name} only applies when {cond.parameter} is one of {list(cond.values)!r} "
                        f"(it is {now})", parameter=spec.name)
                continue
            out[spec.name] = given.get(spec.name, spec.default)
        return out

    def sample(self, rng: random.Random) -> dict[str, Any]:
        """A random point of the space (conditions respected); for tests and a random-search fallback."""
        out: dict[str, Any] = {}
        for spec in self.parameters:
            if spec.condition is None or spec.condition.holds(out):
                out[spec.name] = spec.distribution.sample(rng)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"parameters": [spec.to_dict() for spec in self.parameters]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        return cls(tuple(ParameterSpec.from_dict(p) for p in data.get("parameters", ())))

    def _unknown_message(self, name: str) -> str:
        known = self.names
        if not known:
            return f"unknown hyperparameter {name!r}: this estimator takes none"
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown hyperparameter {name!r}{hint}; known: {', '.join(known)}"
