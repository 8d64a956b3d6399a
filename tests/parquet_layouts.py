"""Rewriting test parquet files in the fixed-size list layout (what polars' Array type writes)."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def to_fixed_size(path):
    """Rewrite every list column of path whose rows all have one length as fixed_size_list;
    returns the names of the rewritten columns."""
    table = pq.read_table(path)
    columns = {}
    changed = []
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if pa.types.is_list(column.type):
            lengths = np.diff(column.offsets.to_numpy())
            if len(lengths) and (lengths == lengths[0]).all():
                column = column.cast(pa.list_(column.type.value_type, int(lengths[0])))
                changed.append(name)
        columns[name] = column
    pq.write_table(pa.table(columns), path)
    return changed
