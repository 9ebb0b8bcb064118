"""The projection worker: consume loop (``loop``), offsets (``offsets``), customer states (``state``), and the
faust process around them (``service``). See ``loop`` for the per-batch protocol."""
