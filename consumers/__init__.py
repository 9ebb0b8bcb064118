"""The faust runtime: agents decode records, call the pure projections and hand rows to the writer."""
