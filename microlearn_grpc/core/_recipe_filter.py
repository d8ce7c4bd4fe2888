"""filter_rows: a whitelisted Python-expression syntax compiled to a pyarrow.compute expression.

User text is parsed with `ast` and never evaluated: only the node types listed in `_ALLOWED`
become Arrow expressions; anything else is rejected with the construct that was refused.
"""

from __future__ import annotations

import ast
import operator
from functools import reduce
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

MAX_FILTER_CHARS = 4096


class BadStep(Exception):
    """Raised inside one step; the recipe driver turns it into a RecipeError naming the step."""


_Bad = BadStep

# ---------------------------------------------------------------- filter_rows: whitelisted AST -> pyarrow expression

_CMP: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
    ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_ALLOWED = ("allowed: columns (name, `odd name`, col('odd name')), int/float/str/bool/None constants, "
            "comparisons, in [...], is None, and/or/not, unary -, is_null(col), is_not_null(col)")
_KINDS = {ast.Attribute: "attribute access", ast.Subscript: "subscripts", ast.Call: "function calls",
          ast.Lambda: "lambdas", ast.BinOp: "arithmetic"}


def _preprocess(text: str) -> str:
    """Turn `backticked names` into col('...') and line breaks into spaces, leaving string literals alone."""
    out, i, quote = [], 0, None
    while i < len(text):
        ch = text[i]
        if quote:
            out.append(ch)
            if ch == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
        elif ch == "`":
            if (end := text.find("`", i + 1)) < 0:
                raise _Bad("filter expression has an unclosed backtick")
            out.append(f"col({text[i + 1:end]!r})")
            i = end
        else:
            quote = ch if ch in "'\"" else None
            out.append(" " if ch in "\r\n\t" else ch)
        i += 1
    return "".join(out).strip()


class _FilterCompiler:
    """Compiles a whitelisted AST; given a schema, literals take the compared column's type (e.g. dates)."""

    def __init__(self, src: str, schema: pa.Schema | None):
        self.src, self.schema, self.columns = src, schema, []

    def unsupported(self, node: ast.AST, what: str) -> _Bad:
        seg = ast.get_source_segment(self.src, node) or type(node).__name__
        return _Bad(f"unsupported syntax {seg[:80]!r} ({what}) in filter_rows; {_ALLOWED}")

    def column(self, node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                raise self.unsupported(node, "dunder names are not allowed")
            return node.id
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "col":
            if node.keywords or len(node.args) != 1 or not isinstance(node.args[0], ast.Constant) \
                    or not isinstance(node.args[0].value, str):
                raise self.unsupported(node, "col() takes one string literal")
            return node.args[0].value
        return None

    def coltype(self, node: ast.AST | None) -> pa.DataType | None:
        col = self.column(node)
        i = self.schema.get_field_index(col) if col is not None and self.schema is not None else -1
        return self.schema.field(i).type if i >= 0 else None  # -1 also for unknown/ambiguous: reported later

    def literal(self, node: ast.AST) -> Any:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant) \
                and type(node.operand.value) in (int, float):
            return -node.operand.value
        if isinstance(node, ast.Constant) and (node.value is None or type(node.value) in (bool, int, float, str)):
            return node.value
        raise self.unsupported(node, "not an allowed constant or operator")

    def scalar(self, value: Any, peer: ast.AST | None) -> pc.Expression:
        typ = self.coltype(peer)
        try:
            if isinstance(value, str) and typ is not None and pa.types.is_temporal(typ):
                return pc.scalar(_read_time(value, typ))
            return pc.scalar(value)
        except (OverflowError, pa.ArrowException) as e:
            raise _Bad(f"constant {value!r} does not fit {typ or 'a column'}: {e}") from None

    def compile(self, node: ast.AST, peer: ast.AST | None = None) -> pc.Expression:
        if (name := self.column(node)) is not None:
            self.columns.append(name)
            return pc.field(name)
        op = getattr(node, "op", None)
        if isinstance(node, ast.UnaryOp) and isinstance(op, ast.Not):
            return ~self.compile(node.operand)
        if isinstance(node, ast.UnaryOp) and isinstance(op, ast.USub) and not isinstance(node.operand, ast.Constant):
            return pc.negate(self.compile(node.operand))
        if isinstance(node, (ast.Constant, ast.UnaryOp)):
            return self.scalar(self.literal(node), peer)
        if isinstance(node, ast.BoolOp):
            combine = operator.and_ if isinstance(op, ast.And) else operator.or_
            return reduce(combine, [self.compile(v) for v in node.values])
        if isinstance(node, ast.Compare):
            lefts = [node.left, *node.comparators[:-1]]  # a < b < c means a < b and b < c
            return reduce(operator.and_, [self.compare(*t) for t in zip(lefts, node.ops, node.comparators)])
        func = getattr(getattr(node, "func", None), "id", None)
        if isinstance(node, ast.Call) and func in ("is_null", "is_not_null"):
            if node.keywords or len(node.args) != 1 or self.column(node.args[0]) is None:
                raise self.unsupported(node, f"{func}() takes one column")
            expr = self.compile(node.args[0]).is_null(nan_is_null=True)
            return expr if func == "is_null" else ~expr
        raise self.unsupported(node, _KINDS.get(type(node), f"{type(node).__name__} is not allowed"))

    def compare(self, left: ast.AST, op: ast.cmpop, right: ast.AST) -> pc.Expression:
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(right, (ast.List, ast.Tuple)):
                raise self.unsupported(right, "'in' needs a list of constants")
            values, subject, typ = [self.literal(e) for e in right.elts], self.compile(left), self.coltype(left)
            base = typ.value_type if typ is not None and pa.types.is_dictionary(typ) else typ
            try:
                value_set = pa.array(values)
                if base is not None and pa.types.is_temporal(base) and pa.types.is_string(value_set.type):
                    value_set = pa.array([_read_time(v, base) for v in values], base)  # dates written as strings
            except (pa.ArrowException, OverflowError, ValueError) as e:
                raise _Bad(f"the list after 'in' mixes types or does not fit {base or 'the column'}: {e}") from None
            expr = subject.isin(value_set) if values else pc.scalar(False)
            return ~expr if isinstance(op, ast.NotIn) else expr
        null_left, null_right = (isinstance(n, ast.Constant) and n.value is None for n in (left, right))
        if isinstance(op, (ast.Is, ast.IsNot, ast.Eq, ast.NotEq)) and (null_left or null_right):
            expr = self.compile(left if null_right else right).is_null(nan_is_null=True)
            return expr if isinstance(op, (ast.Is, ast.Eq)) else ~expr
        if type(op) not in _CMP:
            raise self.unsupported(right, "'is' / 'is not' only compare with None")
        return _CMP[type(op)](self.compile(left, right), self.compile(right, left))


def _read_time(text: str, typ: pa.DataType) -> pa.Scalar:
    """A date/time literal in the column's type; for a zoned column a string without offset means UTC."""
    try:
        return pa.scalar(text).cast(typ)
    except (pa.ArrowException, ValueError):
        if not getattr(typ, "tz", None):
            raise
        return pa.scalar(text).cast(pa.timestamp(typ.unit)).cast(typ)


def compile_filter(text: str, schema: pa.Schema | None) -> tuple[pc.Expression, list[str]]:
    """User text is never evaluated: it is parsed, checked against the whitelist and rebuilt as pc expressions."""
    if len(text) > MAX_FILTER_CHARS:
        raise _Bad(f"filter expression is longer than {MAX_FILTER_CHARS} characters")
    src = _preprocess(text)
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as e:
        raise _Bad(f"invalid filter expression {text[:80]!r}: {e.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise _Bad("filter expression is too deeply nested or not valid text") from None
    comp = _FilterCompiler(src, schema)
    try:
        return comp.compile(tree.body), comp.columns
    except RecursionError:
        raise _Bad("filter expression is too deeply nested") from None

