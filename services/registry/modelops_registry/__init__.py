"""ModelOps registry: signed, replayable artifact state materialised from the event log."""
