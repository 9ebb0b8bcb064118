"""The identity graph: which customer each identifier (``twitter:@jan``, ``address:1234AB-1``, ...) belongs to.

Events whose customer was not known yet carry an identifier as their subject (``schemas.identifiers``). Once the
identifier is linked to a customer, that customer's timeline, journeys and flags include those events, earlier
ones too; after an unlink they no longer do. The graph is resolved when it is read; the log stays as it was.
"""
