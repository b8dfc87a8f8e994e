"""Jobs: the spec analysts write, the lifecycle state machine, the queue and the worker."""
