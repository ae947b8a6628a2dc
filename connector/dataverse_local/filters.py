"""OData `$filter` text -> an SQLite `WHERE` fragment with `?` parameters.

The fragment follows the storage conventions of `docs/embedded-dataverse.md`: columns are
qualified with the caller's alias, every value is a parameter (no literal ever reaches the
SQL text), text columns compare through their `NOCASE` collation, datetimes as UTC text.

Grammar (tokens from `filter_tokens.py`, then recursive descent; `not` applies to the
comparison after it):

    filter     := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | comparison
    comparison := primary (("eq"|"ne"|"gt"|"ge"|"lt"|"le") primary)?
    primary    := "(" or ")" | literal | function "(" [or ("," or)*] ")" | path
    path       := [variable "/" | "$it/"] segment ("/" segment)* ["/" ("any"|"all") lambda]
    lambda     := "(" [variable ":" or] ")"
    literal    := 'text' | 12 | 1.5 | true | false | null | <guid> | 2025-01-01[T10:00:00Z]

Segments are columns (`_x_value` for lookups), single-valued navigation properties
(`primarycontactid/fullname`, an `IN` subquery) and, before `any`/`all`, collection-valued
ones (1:N or N:N, an `EXISTS` subquery). Functions: `contains`, `startswith`, `endswith`
(`LIKE ? ESCAPE '\\'`), and `tolower`/`toupper`, which change nothing because every string
comparison is already case-insensitive.

Every failure is a `connector.dataverse_local.query.QueryError`, with Dataverse's wording
where it is known. Input length and nesting depth are bounded so hostile text cannot
exhaust the stack.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from connector.dataverse_local.filter_tokens import Token, tokenize
from connector.dataverse_local.query import (
    Navigation,
    QueryError,
    resolve_column,
    resolve_navigation,
    unknown_property,
)
from connector.dataverse_local.store import intersect_sides, quote
from connector.solution.model import Column, ColumnType, OneToMany, Schema, Table

__all__ = ["MAX_FILTER_CHARS", "MAX_FILTER_DEPTH", "compile_filter"]

# Longer filters are refused before tokenizing; real ones are far shorter, and URLs over
# ~32 KB fail in front of Dataverse anyway.
MAX_FILTER_CHARS = 8000
# Parentheses, `not`, function arguments, lambdas and navigation hops, counted together;
# keeps recursion (about 6 Python frames per level) and SQLite's parser well within limits.
MAX_FILTER_DEPTH = 50
# Compiled filters kept (entries); a benchmark repeats a handful of filters many times.
CACHE_ENTRIES = 512

_KEYWORDS = frozenset({"eq", "ne", "gt", "ge", "lt", "le", "and", "or", "not"})
_SQL_OPERATORS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_FLIPPED = {"eq": "eq", "ne": "ne", "gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}
_OPERATOR_KINDS = {
    "eq": "Equal",
    "ne": "NotEqual",
    "gt": "GreaterThan",
    "ge": "GreaterThanOrEqual",
    "lt": "LessThan",
    "le": "LessThanOrEqual",
}
_LIKE_FUNCTIONS = {
    "contains": ("%", "%"),
    "startswith": ("", "%"),
    "endswith": ("%", ""),
}
_CASE_FUNCTIONS = frozenset({"tolower", "toupper"})
_INT64_MAX = 2**63 - 1
_INT32_MAX = 2**31 - 1
# Sorts after every stored `YYYY-MM-DDTHH:MM:SSZ`; stands in for "the second after
# 9999-12-31T23:59:59Z", which `datetime` cannot hold.
_END_OF_TIME = "9999-12-31T24:00:00Z"


_TEXT = frozenset({ColumnType.STRING, ColumnType.MEMO})
_WHOLE = frozenset(
    {
        ColumnType.INTEGER,
        ColumnType.BIGINT,
        ColumnType.PICKLIST,
        ColumnType.STATE,
        ColumnType.STATUS,
    }
)
_FRACTIONAL = frozenset({ColumnType.DECIMAL, ColumnType.DOUBLE, ColumnType.MONEY})
_GUIDS = frozenset(
    {ColumnType.LOOKUP, ColumnType.CUSTOMER, ColumnType.OWNER, ColumnType.UNIQUEIDENTIFIER}
)
# Which literal kinds each column type can be compared with.
_COMPATIBLE: dict[ColumnType, frozenset[str]] = {
    **{t: frozenset({"string"}) for t in _TEXT},
    **{t: frozenset({"int", "decimal"}) for t in _WHOLE | _FRACTIONAL},
    **{t: frozenset({"guid"}) for t in _GUIDS},
    ColumnType.BOOLEAN: frozenset({"bool"}),
    ColumnType.DATETIME: frozenset({"datetime", "date"}),
    ColumnType.IMAGE: frozenset(),
}
_COLUMN_EDM = {
    ColumnType.STRING: "Edm.String",
    ColumnType.MEMO: "Edm.String",
    ColumnType.INTEGER: "Edm.Int32",
    ColumnType.BIGINT: "Edm.Int64",
    ColumnType.PICKLIST: "Edm.Int32",
    ColumnType.STATE: "Edm.Int32",
    ColumnType.STATUS: "Edm.Int32",
    ColumnType.DECIMAL: "Edm.Decimal",
    ColumnType.MONEY: "Edm.Decimal",
    ColumnType.DOUBLE: "Edm.Double",
    ColumnType.BOOLEAN: "Edm.Boolean",
    ColumnType.DATETIME: "Edm.DateTimeOffset",
    ColumnType.IMAGE: "Edm.Binary",
    **{t: "Edm.Guid" for t in _GUIDS},
}


@dataclass(frozen=True, slots=True)
class _Pred:
    """A boolean SQL expression and its parameters."""

    sql: str
    params: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class _Lit:
    kind: str  # "string", "int", "decimal", "bool", "null", "guid", "datetime", "date"
    value: object
    edm: str


@dataclass(frozen=True, slots=True)
class _Slot:
    """The value of the filter's `index`-th string literal, changed by `steps` in order.

    A compiled filter is kept per shape (the text with its string literals taken out), so
    its parameters name the literal they come from instead of holding it; `fill` puts the
    values of one call in. A literal only ever becomes a bound parameter, never SQL text.
    """

    index: int
    steps: tuple[Callable[[str], str], ...] = ()

    def then(self, step: Callable[[str], str]) -> _Slot:
        return _Slot(self.index, (*self.steps, step))

    def fill(self, literals: list[str]) -> str:
        value = literals[self.index]
        for step in self.steps:
            value = step(value)
        return value


def _text_step(value: object, step: Callable[[str], str]) -> object:
    """`step` applied to a string literal's value, now or (a `_Slot`) when it is filled."""
    return value.then(step) if isinstance(value, _Slot) else step(str(value))


# (lookup column SQL on the outer row, target table, target primary id, target alias)
_Hop = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class _Col:
    """A column reached by a path, with the navigation hops that lead to it."""

    name: str  # as written, for messages
    column: Column
    alias: str
    hops: tuple[_Hop, ...] = ()
    # For a bare single-valued navigation property: the table it leads to. Only a null
    # comparison is allowed then, and it must respect a polymorphic lookup's other targets.
    navigation_target: Table | None = None

    @property
    def navigation_only(self) -> bool:
        return self.navigation_target is not None

    @property
    def sql(self) -> str:
        return f"{self.alias}.{quote(self.column.logical_name)}"

    def wrap(self, sql: str) -> str:
        """`sql` (a condition on the final column) seen from the outermost row."""
        return _through_hops(self.hops, sql)


def _through_hops(hops: tuple[_Hop, ...], sql: str) -> str:
    """`sql`, a condition on the row at the end of `hops`, seen from the row at the start."""
    for lookup_sql, target, primary_id, alias in reversed(hops):
        sql = (
            f"{lookup_sql} IN (SELECT {alias}.{quote(primary_id)} "
            f"FROM {quote(target)} AS {alias} WHERE {sql})"
        )
    return sql


_Node = _Pred | _Lit | _Col


def _stamp(moment: datetime) -> str:
    # Not strftime: glibc does not pad years below 1000 to four digits.
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def _next_second(moment: datetime) -> str:
    try:
        return _stamp(moment.replace(microsecond=0) + timedelta(seconds=1))
    except OverflowError:
        return _END_OF_TIME


def _like_pattern(value: str, prefix: str, suffix: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{prefix}{escaped}{suffix}"


def _join(items: list[_Pred], operator: str) -> _Pred:
    """`items` joined by AND/OR as a balanced tree, so long chains stay shallow for SQLite."""
    while len(items) > 1:
        paired = [
            _Pred(f"({a.sql} {operator} {b.sql})", a.params + b.params)
            for a, b in zip(items[0::2], items[1::2], strict=False)
        ]
        if len(items) % 2:
            paired.append(items[-1])
        items = paired
    return items[0]


class _Parser:
    def __init__(self, text: str, table: Table, schema: Schema, alias: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0
        self.schema = schema
        self.alias = alias
        # Range variables in scope, innermost last; `$it` is the row being filtered.
        self.scopes: list[tuple[str, Table, str]] = [("$it", table, alias)]
        self.depth = 0
        self.aliases = 0
        # The n-th string token is literal n: `compile_filter` reads the same values from
        # the text, in the same order.
        self.literal_index = {
            token.pos: n for n, token in enumerate(t for t in self.tokens if t.kind == "string")
        }

    # -- tokens -------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def syntax_error(self, token: Token | None = None) -> QueryError:
        pos = (token or self.peek()).pos
        return QueryError(f"Syntax error at position {pos} in '{self.text}'.")

    def expect(self, kind: str) -> Token:
        if self.peek().kind != kind:
            raise self.syntax_error()
        return self.advance()

    def expect_name(self) -> Token:
        token = self.expect("ident")
        if token.text in _KEYWORDS:
            raise self.syntax_error(token)
        return token

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token.kind == "ident" and token.text == word

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_FILTER_DEPTH:
            raise QueryError(
                f"The $filter expression is nested too deeply "
                f"(more than {MAX_FILTER_DEPTH} levels)."
            )

    def new_alias(self) -> str:
        self.aliases += 1
        return f"{self.alias}_{self.aliases}"

    # -- grammar ------------------------------------------------------------------------

    def parse(self) -> _Pred:
        node = self.parse_or()
        if self.peek().kind != "eof":
            raise self.syntax_error()
        return self.as_predicate(node)

    def parse_or(self) -> _Node:
        return self.parse_chain("or", self.parse_and)

    def parse_and(self) -> _Node:
        return self.parse_chain("and", self.parse_unary)

    def parse_chain(self, word: str, operand: Callable[[], _Node]) -> _Node:
        """`operand (word operand)*`, joined by AND/OR when there is more than one."""
        first = operand()
        if not self.at_keyword(word):
            return first
        items = [self.as_predicate(first)]
        while self.at_keyword(word):
            self.advance()
            items.append(self.as_predicate(operand()))
        return _join(items, word.upper())

    def parse_unary(self) -> _Node:
        if not self.at_keyword("not"):
            return self.parse_comparison()
        self.advance()
        self.enter()
        inner = self.as_predicate(self.parse_unary())
        self.depth -= 1
        return _Pred(f"NOT ({inner.sql})", inner.params)

    def parse_comparison(self) -> _Node:
        left = self.parse_primary()
        token = self.peek()
        if token.kind != "ident" or token.text not in _SQL_OPERATORS:
            return left
        self.advance()
        right = self.parse_primary()
        return self.compare(left, token.text, right)

    def parse_primary(self) -> _Node:
        token = self.peek()
        if token.kind == "(":
            self.advance()
            self.enter()
            node = self.parse_or()
            self.expect(")")
            self.depth -= 1
            return node
        if token.kind in ("string", "int", "decimal", "guid", "datetime", "date"):
            self.advance()
            return self.literal(token)
        if token.kind != "ident" or token.text in _KEYWORDS:
            raise self.syntax_error()
        if token.text in ("true", "false"):
            self.advance()
            return _Lit("bool", token.text == "true", "Edm.Boolean")
        if token.text == "null":
            self.advance()
            return _Lit("null", None, "null")
        if self.peek(1).kind == "(":
            return self.parse_call()
        return self.parse_path()

    def literal(self, token: Token) -> _Lit:
        if token.kind == "string":
            return _Lit("string", _Slot(self.literal_index[token.pos]), "Edm.String")
        if token.kind == "guid":
            return _Lit("guid", token.value, "Edm.Guid")
        if token.kind == "datetime":
            return _Lit("datetime", token.value, "Edm.DateTimeOffset")
        if token.kind == "date":
            return _Lit("date", token.value, "Edm.Date")
        if token.kind == "int":
            number = int(token.text)
            if abs(number) > _INT64_MAX:
                raise self.unrecognized("Edm.Int64", token)
            return _Lit("int", number, "Edm.Int32" if abs(number) <= _INT32_MAX else "Edm.Int64")
        value = float(token.text)
        if value in (float("inf"), float("-inf")):
            raise self.unrecognized("Edm.Double", token)
        return _Lit("decimal", value, "Edm.Decimal")

    def unrecognized(self, edm: str, token: Token) -> QueryError:
        return QueryError(
            f"Unrecognized '{edm}' literal '{token.text}' at '{token.pos}' in '{self.text}'."
        )

    # -- functions ----------------------------------------------------------------------

    def parse_call(self) -> _Node:
        name = self.advance()
        if name.text not in _LIKE_FUNCTIONS and name.text not in _CASE_FUNCTIONS:
            raise QueryError(
                f"An unknown function with name '{name.text}' was found. This may also be a "
                "function import or a key lookup on a navigation property, which is not "
                "allowed."
            )
        self.advance()  # "("
        self.enter()
        args: list[_Node] = []
        if self.peek().kind != ")":
            args.append(self.parse_or())
            while self.peek().kind == ",":
                self.advance()
                args.append(self.parse_or())
        self.expect(")")
        self.depth -= 1
        if name.text in _CASE_FUNCTIONS:
            return self.change_case(name.text, args)
        prefix, suffix = _LIKE_FUNCTIONS[name.text]
        if (
            len(args) != 2
            or not isinstance(args[0], _Col)
            or args[0].navigation_only
            or args[0].column.type not in _TEXT
            or not isinstance(args[1], _Lit)
            or args[1].kind != "string"
        ):
            raise self.no_signature(name.text, "Edm.String Nullable=true, Edm.String Nullable=true")
        column = args[0]
        pattern = _text_step(args[1].value, lambda v: _like_pattern(v, prefix, suffix))
        return _Pred(column.wrap(f"{column.sql} LIKE ? ESCAPE '\\'"), (pattern,))

    def change_case(self, name: str, args: list[_Node]) -> _Node:
        # Every string comparison is case-insensitive already, so a column stays as it is.
        if len(args) == 1:
            arg = args[0]
            if isinstance(arg, _Col) and not arg.navigation_only and arg.column.type in _TEXT:
                return arg
            if isinstance(arg, _Lit) and arg.kind == "string":
                step = str.lower if name == "tolower" else str.upper
                return _Lit("string", _text_step(arg.value, step), arg.edm)
        raise self.no_signature(name, "Edm.String Nullable=true")

    @staticmethod
    def no_signature(name: str, signature: str) -> QueryError:
        return QueryError(
            f"No function signature for the function with name '{name}' matches the "
            f"specified arguments. The function signatures considered are: "
            f"{name}({signature})."
        )

    # -- paths --------------------------------------------------------------------------

    def parse_path(self) -> _Node:
        token = self.advance()
        _, table, alias = self.scopes[0]
        variable = next((s for s in reversed(self.scopes) if s[0] == token.text), None)
        if variable is not None and (token.text == "$it" or self.peek().kind == "/"):
            _, table, alias = variable
            self.expect("/")
            token = self.expect_name()
        elif token.text.startswith("$"):
            raise self.syntax_error(token)
        hops: list[_Hop] = []
        entered = self.depth
        while True:
            column = resolve_column(table, token.text)
            if column is not None:
                if self.peek().kind == "/":
                    raise self.syntax_error()
                self.depth = entered
                return _Col(token.text, column, alias, tuple(hops))
            navigation = resolve_navigation(self.schema, table, token.text)
            if navigation is None:
                raise unknown_property(token.text, table)
            relationship = navigation.relationship
            if isinstance(relationship, OneToMany) and not navigation.collection:
                lookup = relationship.referencing_attribute
                if self.peek().kind != "/":
                    self.depth = entered
                    column = table.columns.get(lookup) or Column(lookup, ColumnType.LOOKUP)
                    return _Col(token.text, column, alias, tuple(hops), navigation.target)
                self.advance()
                self.enter()
                target = navigation.target
                inner = self.new_alias()
                hops.append(
                    (f"{alias}.{quote(lookup)}", target.logical_name, target.primary_id, inner)
                )
                table, alias = target, inner
                token = self.expect_name()
                continue
            self.expect("/")
            operator = self.expect_name()
            if operator.text not in ("any", "all") or self.peek().kind != "(":
                raise self.syntax_error(operator)
            predicate = self.parse_lambda(navigation, table, alias, operator.text)
            self.depth = entered
            return _Pred(_through_hops(tuple(hops), predicate.sql), predicate.params)

    def parse_lambda(
        self, navigation: Navigation, table: Table, alias: str, operator: str
    ) -> _Pred:
        """`any`/`all` over a collection-valued `navigation` of the row `alias` of `table`."""
        relationship, target = navigation.relationship, navigation.target
        self.expect("(")
        self.enter()
        inner = self.new_alias()
        body: _Pred | None = None
        if self.peek().kind == ")":
            if operator == "all":
                raise self.syntax_error()
        else:
            variable = self.expect_name()
            self.expect(":")
            self.scopes.append((variable.text, target, inner))
            body = self.as_predicate(self.parse_or())
            self.scopes.pop()
        self.expect(")")
        self.depth -= 1
        outer_id = f"{alias}.{quote(table.primary_id)}"
        if isinstance(relationship, OneToMany):
            source = f"{quote(target.logical_name)} AS {inner}"
            link = f"{inner}.{quote(relationship.referencing_attribute)} = {outer_id}"
        else:
            pairs = self.new_alias()
            near_id, far_id = intersect_sides(
                relationship, self.schema, table=table, navigation=navigation.name
            )
            source = (
                f"{quote(relationship.intersect_entity)} AS {pairs} JOIN "
                f"{quote(target.logical_name)} AS {inner} "
                f"ON {inner}.{quote(target.primary_id)} = {pairs}.{quote(far_id)}"
            )
            link = f"{pairs}.{quote(near_id)} = {outer_id}"
        if body is None:
            return _Pred(f"EXISTS (SELECT 1 FROM {source} WHERE {link})")
        if operator == "any":
            return _Pred(
                f"EXISTS (SELECT 1 FROM {source} WHERE {link} AND ({body.sql}))", body.params
            )
        # A row whose condition is NULL does not satisfy it, so it counts against `all`.
        return _Pred(
            f"NOT EXISTS (SELECT 1 FROM {source} WHERE {link} AND NOT IFNULL(({body.sql}), 0))",
            body.params,
        )

    # -- comparisons --------------------------------------------------------------------

    def as_predicate(self, node: _Node) -> _Pred:
        if isinstance(node, _Pred):
            return node
        if isinstance(node, _Col) and not node.navigation_only:
            if node.column.type == ColumnType.BOOLEAN:
                return _Pred(node.wrap(f"{node.sql} = 1"))
        if isinstance(node, _Lit) and node.kind == "bool":
            return _Pred("1" if node.value else "0")
        raise QueryError("The $filter expression must evaluate to a single boolean value.")

    def compare(self, left: _Node, operator: str, right: _Node) -> _Pred:
        if isinstance(left, _Lit) and not isinstance(right, _Lit):
            left, right, operator = right, left, _FLIPPED[operator]
        if isinstance(left, _Pred):
            if isinstance(right, _Lit) and right.kind == "bool" and operator in ("eq", "ne"):
                if right.value == (operator == "eq"):
                    return left
                return _Pred(f"NOT ({left.sql})", left.params)
            raise self.incompatible("Edm.Boolean", self.edm_of(right), operator)
        if isinstance(left, _Lit):
            raise QueryError(
                f"Comparing two literals is not supported: put a property on one side of "
                f"'{operator}' in '{self.text}'."
            )
        if isinstance(right, _Pred):
            raise self.incompatible(self.edm_of(left), "Edm.Boolean", operator)
        if isinstance(right, _Col):
            return self.compare_columns(left, operator, right)
        return self.compare_value(left, operator, right)

    def edm_of(self, node: _Node) -> str:
        if isinstance(node, _Lit):
            return node.edm
        if isinstance(node, _Col):
            return _COLUMN_EDM[node.column.type]
        return "Edm.Boolean"

    @staticmethod
    def incompatible(left: str, right: str, operator: str) -> QueryError:
        return QueryError(
            "A binary operator with incompatible types was detected. Found operand types "
            f"'{left}' and '{right}' for operator kind '{_OPERATOR_KINDS[operator]}'."
        )

    def compare_columns(self, left: _Col, operator: str, right: _Col) -> _Pred:
        if left.hops or right.hops or left.navigation_only or right.navigation_only:
            raise QueryError(
                "Comparing a column with a column across a navigation property is not supported."
            )
        numeric = _WHOLE | _FRACTIONAL
        same = _COLUMN_EDM[left.column.type] == _COLUMN_EDM[right.column.type]
        both_numeric = left.column.type in numeric and right.column.type in numeric
        if left.column.type == ColumnType.IMAGE or not (same or both_numeric):
            raise self.incompatible(
                _COLUMN_EDM[left.column.type], _COLUMN_EDM[right.column.type], operator
            )
        return _Pred(f"{left.sql} {_SQL_OPERATORS[operator]} {right.sql}")

    def compare_value(self, column: _Col, operator: str, value: _Lit) -> _Pred:
        ref = column.sql
        target = column.navigation_target
        if value.kind == "null" and target is not None and operator in ("eq", "ne"):
            # `customerid_account eq null` also holds when the customer is a contact.
            ids = f"(SELECT {quote(target.primary_id)} FROM {quote(target.logical_name)})"
            if operator == "ne":
                return _Pred(column.wrap(f"{ref} IN {ids}"))
            return _Pred(column.wrap(f"({ref} IS NULL OR {ref} NOT IN {ids})"))
        if value.kind == "null":
            if operator == "eq":
                return _Pred(column.wrap(f"{ref} IS NULL"))
            if operator == "ne":
                return _Pred(column.wrap(f"{ref} IS NOT NULL"))
            # An ordering against null is never true.
            return _Pred("0")
        if column.navigation_only:
            raise QueryError(
                f"The navigation property '{column.name}' can only be compared with null; "
                f"compare '_{column.column.logical_name}_value' with an id instead."
            )
        column_type = column.column.type
        if value.kind not in _COMPATIBLE[column_type]:
            raise self.incompatible(_COLUMN_EDM[column_type], value.edm, operator)
        if value.kind == "datetime":
            assert isinstance(value.value, datetime)
            return self.compare_moment(column, operator, value.value)
        if value.kind == "date":
            assert isinstance(value.value, date)
            return self.compare_day(column, operator, value.value)
        parameter: object = value.value
        if value.kind == "bool":
            parameter = 1 if value.value else 0
        return _Pred(column.wrap(f"{ref} {_SQL_OPERATORS[operator]} ?"), (parameter,))

    @staticmethod
    def compare_moment(column: _Col, operator: str, moment: datetime) -> _Pred:
        ref = column.sql
        if not moment.microsecond:
            sql = f"{ref} {_SQL_OPERATORS[operator]} ?"
            return _Pred(column.wrap(sql), (_stamp(moment),))
        # Stored values are whole seconds: between two of them, round the bound the way
        # that keeps the comparison exact.
        if operator == "eq":
            return _Pred("0")
        if operator == "ne":
            return _Pred(column.wrap(f"{ref} IS NOT NULL"))
        bound = _stamp(moment) if operator in ("gt", "le") else _next_second(moment)
        return _Pred(column.wrap(f"{ref} {_SQL_OPERATORS[operator]} ?"), (bound,))

    @staticmethod
    def compare_day(column: _Col, operator: str, day: date) -> _Pred:
        """A date against a datetime column means the whole UTC day."""
        ref = column.sql
        start = datetime(day.year, day.month, day.day, tzinfo=UTC)
        first = _stamp(start)
        try:
            after = _stamp(start + timedelta(days=1))
        except OverflowError:
            after = _END_OF_TIME
        if operator == "eq":
            return _Pred(column.wrap(f"({ref} >= ? AND {ref} < ?)"), (first, after))
        if operator == "ne":
            return _Pred(column.wrap(f"({ref} < ? OR {ref} >= ?)"), (first, after))
        bound = {"gt": after, "ge": first, "lt": first, "le": after}[operator]
        sql_operator = {"gt": ">=", "ge": ">=", "lt": "<", "le": "<"}[operator]
        return _Pred(column.wrap(f"{ref} {sql_operator} ?"), (bound,))


# A string literal as the tokenizer reads it: a quote starts one wherever it stands (no
# other token holds a quote), and a doubled quote inside is one quote.
_STRING_LITERAL_RE = re.compile(r"'((?:[^']|'')*)'")

_cache: OrderedDict[tuple[int, int, str, str], tuple[Schema, Table, _Pred]] = OrderedDict()
_cache_lock = threading.Lock()


def compile_filter(
    text: str, table: Table, schema: Schema, *, alias: str = "t"
) -> tuple[str, list[object]]:
    """The SQLite condition and parameters for the `$filter` `text` on `table`.

    `text` is already URL-decoded. Columns are qualified with `alias`; subqueries use
    `<alias>_<n>`. Raises QueryError (and nothing else) for syntax errors, unknown
    properties, type mismatches, and input over the length or depth limits.

    Compiled filters are kept by shape: `emailaddress1 eq 'a@x.com'` and
    `emailaddress1 eq 'b@y.com'` share one entry, so record identification, which sends a
    new address each time, parses once.
    """
    if len(text) > MAX_FILTER_CHARS:
        raise QueryError(
            f"The $filter expression is too long ({len(text)} characters; "
            f"the limit is {MAX_FILTER_CHARS})."
        )
    shape = _STRING_LITERAL_RE.sub("''", text)
    key = (id(schema), id(table), alias, shape)
    with _cache_lock:
        hit = _cache.get(key)
        # The ids are only trusted while the very same objects are alive in the entry.
        if hit is not None and hit[0] is schema and hit[1] is table:
            _cache.move_to_end(key)
            predicate: _Pred | None = hit[2]
        else:
            predicate = None
    if predicate is None:
        try:
            predicate = _Parser(text, table, schema, alias).parse()
        except RecursionError:
            raise QueryError("The $filter expression is nested too deeply.") from None
        with _cache_lock:
            _cache[key] = (schema, table, predicate)
            if len(_cache) > CACHE_ENTRIES:
                _cache.popitem(last=False)
    if "'" not in text:
        return predicate.sql, list(predicate.params)
    literals = [value.replace("''", "'") for value in _STRING_LITERAL_RE.findall(text)]
    return predicate.sql, [
        p.fill(literals) if isinstance(p, _Slot) else p for p in predicate.params
    ]
