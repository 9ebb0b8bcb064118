"""The ``omnitrail`` command tree; the commands live in ``produce``, ``read``, ``operate`` and ``samples``."""

import typer

app = typer.Typer(help="omnitrail: event-sourced omnichannel customer-interaction log.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
stack_app = typer.Typer(help="The local stack: a Kafka-protocol broker on loopback.", no_args_is_help=True)
schemas_app = typer.Typer(help="Published JSON Schemas of the event types.", no_args_is_help=True)
keys_app = typer.Typer(help="Write keys: what channel producers send to POST /v1/events.", no_args_is_help=True)
tokens_app = typer.Typer(help="Read tokens: what analysts and the CLI send to the read API.", no_args_is_help=True)
deadletter_app = typer.Typer(help="Records the worker could not process: list them, replay them after a fix.",
                             no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(schemas_app, name="schemas")
app.add_typer(keys_app, name="keys")
app.add_typer(tokens_app, name="tokens")
app.add_typer(deadletter_app, name="deadletter")
