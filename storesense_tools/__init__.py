"""The composition root: the `storesense` command, the demo, evaluation and report tools,
broker-config and enrolment. It wires hub, edge and the contract together; nothing imports it."""
