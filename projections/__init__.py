"""ClickHouse projections: numbered migrations, pure folds from events to rows, the store and the queries."""
