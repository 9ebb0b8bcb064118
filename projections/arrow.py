"""Rows (dicts) -> Arrow tables, the form the store ingests fastest."""

import pyarrow as pa


def to_arrow(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)
